"""`POST /webhook/ringotel`: the app's replies become `sms.outbound`; delivered notices."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientSession

from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.core.inbound.routing import publish_inbound
from pbxsms.core.model.events import OutboundRequest, State, StatusEvent
from pbxsms.core.serve.runtime import Runtime
from pbxsms.plugins.mobileapp.webhook import reply_id
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.helpers import wait_until
from tests.support.delivery import (
    CUSTOMER,
    HOOK_TOKEN,
    NUMBER,
    ORG,
    bus_toml,
    count_on,
    delivery_env,
    inject_inbound,
    last_on,
    routed_inbound,
    wait_channel,
)
from tests.support.gateway import Gateway
from tests.support.smtp import SmtpServer

StartGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def http() -> AsyncIterator[ClientSession]:
    async with ClientSession() as session:
        yield session


async def post(http: ClientSession, gateway: Gateway, body: Any, token: str | None = HOOK_TOKEN,
               raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
    url = f"{gateway.url}/webhook/ringotel"
    params = {"token": token} if token is not None else {}
    async with http.post(url, params=params, json=None if raw else body, data=raw) as response:
        return response.status, await response.json()


# Extension 201 owns two numbers, 202 one; every number belongs to app organisation ORG.
NUMBERS = f"""
[[numbers]]
number = "{NUMBER}"
provider = "clicksend"
extension = "201"
domain = "pbx.example.com"
mobileapp_org = "{ORG}"

[[numbers]]
number = "+61433333333"
provider = "clicksend"
extension = "201"
domain = "pbx.example.com"
mobileapp_org = "{ORG}"

[[numbers]]
number = "+61444444444"
provider = "clicksend"
extension = "202"
domain = "pbx.example.com"
mobileapp_org = "{ORG}"
"""


def with_numbers() -> str:
    return bus_toml().replace('enabled = ["email", "mobileapp"]',
                              'enabled = ["clicksend", "email", "mobileapp"]') + NUMBERS


async def test_a_reply_leaves_from_the_number_the_customer_texted(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer
) -> None:
    gateway = await start_gateway(toml=with_numbers(), env=delivery_env(app, smtp))
    # The extension owns two numbers; the customer texted one, then the other. The
    # inbound path (routing) records the conversation.
    earlier = routed_inbound("Are you open?", number=NUMBER)
    texted = routed_inbound("Can I book for 4?", number="+61433333333")
    for message in (earlier, texted):
        await publish_inbound(gateway.runtime, message,
                              f"clicksend:{message.provider_message_id}")
        await wait_channel(gateway.runtime, message.id, "mobileapp", State.DELIVERED)

    url = f"{gateway.url}/webhook/ringotel"
    answer = await app.reply(url, HOOK_TOKEN, "201", CUSTOMER, "Yes, see you at 4", ORG,
                             messageid="rt-msg-1")
    assert answer.status == 200
    request = OutboundRequest.model_validate(await last_on(gateway.runtime, "sms.outbound"))
    assert (request.from_, request.to, request.extension, request.body, request.source) == (
        "+61433333333", CUSTOMER, "201", "Yes, see you at 4", "mobileapp")
    assert request.mobileapp_org == ORG
    assert request.id == reply_id(ORG, "rt-msg-1", "201", CUSTOMER, "Yes, see you at 4")

    # The app repeats the webhook: accepted again, sent once.
    again = await app.reply(url, HOOK_TOKEN, "201", CUSTOMER, "Yes, see you at 4", ORG,
                            messageid="rt-msg-1")
    assert again.status == 200 and '"duplicate": true' in again.body
    assert await count_on(gateway.runtime, "sms.outbound") == 1


async def test_a_reply_without_a_conversation_leaves_from_the_extensions_number(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer,
    http: ClientSession
) -> None:
    gateway = await start_gateway(toml=with_numbers(), env=delivery_env(app, smtp))
    status, body = await post(http, gateway, {"method": "message", "params": {
        "from": 202, "to": "(415) 555-2671", "content": "Call me", "orgid": ORG,
        "messageid": "rt-2"}})
    assert status == 200 and body["status"] == "accepted"
    request = OutboundRequest.model_validate(await last_on(gateway.runtime, "sms.outbound"))
    # The customer's number in E.164 (PBXSMS_DEFAULT_REGION), the extension as text.
    assert (request.from_, request.extension, request.to, request.mobileapp_org) == (
        "+61444444444", "202", "+14155552671", ORG)
    assert body["id"] == request.id


async def test_a_reply_from_an_extension_without_a_number_is_refused_clearly(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer,
    http: ClientSession
) -> None:
    gateway = await start_gateway(toml=with_numbers(), env=delivery_env(app, smtp))
    status, body = await post(http, gateway, {"method": "message", "params": {
        "from": "299", "to": CUSTOMER, "content": "hi", "orgid": ORG, "messageid": "n"}})
    assert status == 422 and body["field"] == "params.from"
    assert "299" in body["error"] and "no enabled number" in body["error"]
    assert await count_on(gateway.runtime, "sms.outbound") == 0


@pytest.mark.parametrize(("env", "token", "message"), [
    ({"RINGOTEL_WEBHOOK_TOKEN": ""}, HOOK_TOKEN, "set RINGOTEL_WEBHOOK_TOKEN"),
    ({}, "wrong", "missing or wrong token"),
    ({}, None, "missing or wrong token"),
], ids=["unset", "wrong", "missing"])
async def test_webhook_refuses_without_the_token(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer,
    http: ClientSession, env: dict[str, str], token: str | None, message: str
) -> None:
    gateway = await start_gateway(toml=bus_toml(), env=delivery_env(app, smtp, **env))
    status, body = await post(http, gateway, {"method": "message", "params": {
        "from": "201", "to": CUSTOMER, "content": "hi", "orgid": ORG}}, token=token)
    assert status == 401 and message in body["error"]
    assert await count_on(gateway.runtime, "sms.outbound") == 0


async def test_bad_input_is_answered_without_sending(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer,
    http: ClientSession
) -> None:
    gateway = await start_gateway(toml=bus_toml(), env=delivery_env(app, smtp))
    good = {"from": "201", "to": CUSTOMER, "content": "hi", "orgid": ORG, "messageid": "x"}
    cases: list[tuple[Any, bytes | None, int, str | None]] = [
        (None, b"{not json", 400, None),
        ([1, 2], None, 400, None),
        ({"params": good}, None, 400, "method"),
        ({"method": "message", "params": "x"}, None, 422, "params"),
        ({"method": "message", "params": {**good, "to": "not a number"}}, None, 422,
         "params.to"),
        ({"method": "message", "params": {**good, "content": " "}}, None, 422,
         "params.content"),
        ({"method": "message", "params": {**good, "from": None}}, None, 422, "params.from"),
        ({"method": "delivered", "params": {}}, None, 422, "params.messageid"),
    ]
    for body, raw, expected, field in cases:
        status, answer = await post(http, gateway, body, raw=raw)
        assert (status, answer.get("field")) == (expected, field), (body, answer)
    for method in ("typing", "read"):
        status, answer = await post(http, gateway, {"method": method, "params": good})
        assert (status, answer) == (200, {"status": "ignored"})
    assert await count_on(gateway.runtime, "sms.outbound") == 0
    async with http.get(f"{gateway.url}/metrics") as response:
        metrics = await response.text()
    assert 'pbxsms_webhooks_total{kind="other",provider="mobileapp",result="ignored"}' in metrics


async def test_the_apps_delivered_notice_is_recorded(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer,
    http: ClientSession
) -> None:
    gateway = await start_gateway(toml=bus_toml(), env=delivery_env(app, smtp))
    message = routed_inbound()
    await inject_inbound(gateway.runtime, message)
    await wait_channel(gateway.runtime, message.id, "mobileapp", State.DELIVERED)
    (push,) = app.pushes

    answer = await app.delivered(f"{gateway.url}/webhook/ringotel", HOOK_TOKEN, push.messageid,
                                 orgid=ORG)
    assert answer.status == 200 and message.id in answer.body

    async def confirmed() -> bool:
        record = await gateway.runtime.status.get(message.id)
        return record is not None and any(
            h.channel == "mobileapp" and h.attempt is None for h in record.history)

    await wait_until(confirmed, message="the app's confirmation in the history")
    status, body = await post(http, gateway, {"method": "delivered",
                                              "params": {"messageid": "never-pushed"}})
    assert (status, body) == (200, {"status": "unknown"})


async def test_a_reply_that_cannot_be_stored_is_503(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer,
    http: ClientSession
) -> None:
    gateway = await start_gateway(toml=with_numbers(), env=delivery_env(app, smtp))
    await gateway.runtime.js.delete_stream(gateway.runtime.stream)
    status, body = await post(http, gateway, {"method": "message", "params": {
        "from": "201", "to": CUSTOMER, "content": "hi", "orgid": ORG, "messageid": "m"}})
    assert status == 503 and "retry" in body["error"]


async def test_a_reply_or_notice_while_nats_is_stopped_is_503_at_once(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer,
    http: ClientSession, nats_server: EmbeddedNats
) -> None:
    gateway = await start_gateway(toml=with_numbers(), env=delivery_env(app, smtp))
    nc = gateway.runtime.nc
    assert nc is not None
    await nats_server.stop()
    await wait_until(lambda: not nc.is_connected, message="the client to notice")
    for body in ({"method": "message", "params": {"from": "201", "to": CUSTOMER,
                                                  "content": "hi", "orgid": ORG,
                                                  "messageid": "m"}},
                 {"method": "delivered", "params": {"messageid": "m"}}):
        started = time.perf_counter()
        status, answer = await post(http, gateway, body)
        elapsed = time.perf_counter() - started
        assert status == 503 and "retry" in answer["error"], answer
        assert elapsed < 0.1, f"{body['method']} answered 503 after {elapsed:.3f} s"


API_TOKEN = "api-t0ken"


async def on_subject(runtime: Runtime, subject: str) -> list[bytes]:
    """Every event the stream holds on `subject`, oldest first."""
    found: list[bytes] = []
    seq = 1
    while await count_on(runtime, subject) > len(found):
        raw = await runtime.js.get_msg(runtime.stream, seq, subject=subject, next=True)
        assert raw.data is not None and raw.seq is not None
        found.append(raw.data)
        seq = raw.seq + 1
    return found


async def queued_event(runtime: Runtime, message_id: str) -> StatusEvent:
    events = [StatusEvent.model_validate_json(data)
              for data in await on_subject(runtime, f"sms.status.{message_id}")]
    (queued,) = [event for event in events if event.state == State.QUEUED]
    return queued


async def test_a_reply_is_taken_as_the_send_api_takes_a_request(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer,
    http: ClientSession
) -> None:
    """The same `queued` status, the same number chosen, the same request stored."""
    gateway = await start_gateway(toml=with_numbers(),
                                  env=delivery_env(app, smtp, PBXSMS_API_TOKEN=API_TOKEN))
    status, reply = await post(http, gateway, {"method": "message", "params": {
        "from": "202", "to": CUSTOMER, "content": "Running late", "orgid": ORG,
        "messageid": "rt-q"}})
    assert status == 200, reply
    async with http.post(f"{gateway.url}/api/v1/messages",
                         json={"extension": "202", "to": CUSTOMER, "body": "Running late"},
                         headers={"Authorization": f"Bearer {API_TOKEN}"}) as response:
        assert response.status == 202
        sent = await response.json()

    replied, api = (await queued_event(gateway.runtime, reply["id"]),
                    await queued_event(gateway.runtime, sent["id"]))
    assert replied.details == {"encoding": "GSM-7", "source": "mobileapp"}
    assert api.details == {"encoding": "GSM-7", "source": "api"}
    assert ((replied.direction, replied.channel, replied.segments)
            == (api.direction, api.channel, api.segments) == ("outbound", "clicksend", 1))

    stored = {request.id: request for request in (
        OutboundRequest.model_validate_json(data)
        for data in await on_subject(gateway.runtime, "sms.outbound"))}
    assert stored.keys() == {reply["id"], sent["id"]}
    for request in stored.values():
        assert (request.from_, request.extension, request.to, request.body) == (
            "+61444444444", "202", CUSTOMER, "Running late")


async def test_a_reply_gets_the_send_apis_checks(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer,
    http: ClientSession
) -> None:
    """A text over `[outbound] max_segments` is refused as the API refuses it, in the
    app's field names, and nothing is stored."""
    gateway = await start_gateway(toml=with_numbers(), env=delivery_env(app, smtp))
    status, body = await post(http, gateway, {"method": "message", "params": {
        "from": "202", "to": CUSTOMER, "content": "x" * (6 * 153 + 1), "orgid": ORG,
        "messageid": "rt-long"}})
    assert status == 422 and body["field"] == "params.content"
    assert "the limit is 6 parts" in body["error"]
    assert await count_on(gateway.runtime, "sms.outbound") == 0


async def test_a_reused_messageid_with_another_reply_is_not_dropped(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer,
    http: ClientSession
) -> None:
    gateway = await start_gateway(toml=with_numbers(), env=delivery_env(app, smtp))
    first = {"from": 202, "to": CUSTOMER, "content": "Call me", "orgid": ORG,
             "messageid": "rt-reused"}
    status, one = await post(http, gateway, {"method": "message", "params": first})
    assert (status, one["duplicate"]) == (200, False)
    # Another text, or another customer, under the same messageid: a different reply.
    for change in ({"content": "Call me tomorrow"}, {"to": "+61400000001"}):
        status, other = await post(http, gateway, {"method": "message",
                                                   "params": first | change})
        assert (status, other["duplicate"]) == (200, False), change
        assert other["id"] != one["id"]
    # The same webhook again is still one send.
    status, again = await post(http, gateway, {"method": "message", "params": first})
    assert (status, again["duplicate"], again["id"]) == (200, True, one["id"])
    assert await count_on(gateway.runtime, "sms.outbound") == 3


async def test_a_reply_too_long_or_not_text_is_refused_at_once(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer,
    http: ClientSession
) -> None:
    gateway = await start_gateway(toml=with_numbers(), env=delivery_env(app, smtp))
    params = {"from": 202, "to": CUSTOMER, "orgid": ORG, "messageid": "rt-long"}
    status, body = await post(http, gateway, {"method": "message",
                                              "params": params | {"content": "x" * 2000}})
    assert (status, body["field"]) == (422, "params.content"), body
    raw = ('{"method": "message", "params": {"from": 202, "to": "' + CUSTOMER
           + '", "orgid": "' + ORG + '", "messageid": "rt-surrogate", '
           '"content": "hi \\ud800"}}')
    status, body = await post(http, gateway, None, raw=raw.encode())
    assert (status, body["field"]) == (422, "params.content"), body
    assert await count_on(gateway.runtime, "sms.outbound") == 0
