"""STOP, START and HELP end to end: recorded per (our number, customer), announced on
`sms.optout`, sends refused before any carrier call (API and bus), optional replies, and
a carrier's own opt-out error recorded too."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import ClientSession

from pbxsms.core.hookspecs import hookimpl
from pbxsms.core.model.events import OptOutEvent, OutboundRequest
from pbxsms.core.plugins import Plugins
from pbxsms.core.registry import OutboundMessage, ProviderRegister, SendResult, opted_out
from pbxsms.core.serve.runtime import Runtime
from pbxsms.sim.clicksend import ClickSendSimulator
from tests.helpers import wait_until
from tests.support.gateway import Gateway, StartGateway

USER, KEY, TOKEN = "pbx-user", "pbx-key", "api-t0ken"
OURS, OTHER = "+61411111111", "+61411111112"
CUSTOMER = "+61422222222"
NUMBERS = f"""
[plugins]
enabled = ["clicksend"]

[bus]
backoff_initial = "50ms"
backoff_max = "500ms"

[[numbers]]
number = "{OURS}"
provider = "clicksend"
extension = "201"

[[numbers]]
number = "{OTHER}"
provider = "clicksend"
extension = "202"
"""


async def start(start_gateway: StartGateway, clicksend: ClickSendSimulator,
                toml: str = "", plugins: Plugins | None = None) -> Gateway:
    env = {"CLICKSEND_USERNAME": USER, "CLICKSEND_API_KEY": KEY,
           "CLICKSEND_BASE_URL": clicksend.base_url, "CLICKSEND_WEBHOOK_TOKEN": "cs",
           "PBXSMS_API_TOKEN": TOKEN}
    return await start_gateway(toml=NUMBERS + toml, env=env, plugins=plugins)


async def text_us(gateway: Gateway, clicksend: ClickSendSimulator, body: str,
                  to: str = OURS) -> None:
    pushed = await clicksend.push_inbound(
        f"{gateway.url}/webhook/clicksend/sms?token=cs", CUSTOMER, to, body,
        webhook_type="json")
    assert pushed.status == 200


async def send(gateway: Gateway, body: str, sender: str = OURS) -> tuple[int, Any]:
    async with ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http, \
            http.post(f"{gateway.url}/api/v1/messages",
                      json={"from": sender, "to": CUSTOMER, "body": body}) as response:
        return response.status, await response.json()


async def optout_events(gateway: Gateway, count: int) -> list[OptOutEvent]:
    events: list[OptOutEvent] = []

    async def enough() -> bool:
        sub = await gateway.runtime.js.subscribe("sms.optout", ordered_consumer=True)
        events.clear()
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=0.2)
                except Exception:
                    break
                events.append(OptOutEvent.model_validate_json(msg.data))
        finally:
            await sub.unsubscribe()
        return len(events) >= count

    await wait_until(enough, message=f"{count} opt-out event(s)")
    return events


async def test_stop_refuses_the_next_send_and_start_allows_it_again(
        start_gateway: StartGateway) -> None:
    async with ClickSendSimulator([(USER, KEY)]) as clicksend:
        gateway = await start(start_gateway, clicksend)
        await text_us(gateway, clicksend, " Stop ")
        (stop,) = await optout_events(gateway, 1)
        assert (stop.number, stop.customer, stop.opted_out, stop.source, stop.keyword) == (
            OURS, CUSTOMER, True, "keyword", "STOP")

        status, answer = await send(gateway, "Your table is ready")
        assert status == 422, answer
        assert answer["field"] == "to" and answer["error"].startswith("opted_out:")
        # Published on the bus directly, past the API: refused by the dispatcher.
        direct = OutboundRequest(**{"from": OURS}, to=CUSTOMER, body="from a PBX service")
        await gateway.runtime.publish("sms.outbound", direct, direct.id)
        record = await wait_state(gateway, direct.id, "failed")
        assert record.history[-1].error_code == "OPTED_OUT"
        # Per number: the customer did not stop texts from our other number.
        status, _ = await send(gateway, "From the other desk", sender=OTHER)
        assert status == 202
        await wait_until(lambda: len(clicksend.sent_messages) == 1, message="the other send")
        assert clicksend.sent_messages[0]["from"] == OTHER

        await text_us(gateway, clicksend, "start")
        events = await optout_events(gateway, 2)
        assert [e.opted_out for e in events] == [True, False]
        status, answer = await send(gateway, "Welcome back")
        assert status == 202, answer
        await wait_until(lambda: len(clicksend.sent_messages) == 2, message="the send")
        assert clicksend.sent_messages[1]["body"] == "Welcome back"


async def test_configured_replies_answer_each_keyword_once(
        start_gateway: StartGateway) -> None:
    replies = ('\n[optout]\nreply_stop = "You will get no more texts. Text START to '
               'undo."\nreply_help = "Call us on 1300 000 000."\n')
    async with ClickSendSimulator([(USER, KEY)]) as clicksend:
        gateway = await start(start_gateway, clicksend, replies)
        await text_us(gateway, clicksend, "HELP")
        # The HELP answer first: once STOP is recorded, it would be refused too.
        await wait_until(lambda: len(clicksend.sent_messages) == 1, message="the HELP reply")
        await text_us(gateway, clicksend, "STOP")
        await wait_until(lambda: len(clicksend.sent_messages) == 2, message="two replies")
        bodies = sorted(str(m["body"]) for m in clicksend.sent_messages)
        assert bodies == ["Call us on 1300 000 000.",
                          "You will get no more texts. Text START to undo."]
        # The confirmation went out, and nothing else does.
        status, _ = await send(gateway, "A promotion")
        assert status == 422
        # START has no reply configured: recorded, not answered.
        await text_us(gateway, clicksend, "START")
        await optout_events(gateway, 2)
        assert len(clicksend.sent_messages) == 2


class OptedOutCarrier:
    """A carrier that refuses every message as opted out, as Twilio's 21610 does."""

    name = "stopsms"
    max_batch = 10
    flush_delay = 0.0
    retry_ambiguous = True

    def __init__(self) -> None:
        self.calls = 0

    async def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        self.calls += 1
        return [opted_out("21610", "recipient opted out") for _ in messages]


async def test_a_carriers_opt_out_error_is_recorded(start_gateway: StartGateway) -> None:
    carrier = OptedOutCarrier()

    class Register:
        @hookimpl
        def register_providers(self, runtime: Runtime, register: ProviderRegister) -> None:
            register(carrier)

    plugins = Plugins(["clicksend"])
    plugins.register(Register(), "stopsms")
    async with ClickSendSimulator([(USER, KEY)]) as clicksend:
        gateway = await start(start_gateway, clicksend, plugins=plugins)
        direct = OutboundRequest(**{"from": OURS}, to=CUSTOMER, body="hi", provider="stopsms")
        await gateway.runtime.publish("sms.outbound", direct, direct.id)
        (event,) = await optout_events(gateway, 1)
        assert (event.id, event.source, event.opted_out, event.provider) == (
            direct.id, "carrier", True, "stopsms")
        status, answer = await send(gateway, "again")
        assert status == 422 and "opted out at the carrier" in answer["error"]
        assert carrier.calls == 1 and clicksend.sent_messages == []


async def wait_state(gateway: Gateway, message_id: str, state: str) -> Any:
    found: list[Any] = []

    async def reached() -> bool:
        record = await gateway.runtime.status.get(message_id)
        if record is not None and record.state.value == state:
            found.append(record)
            return True
        return False

    await wait_until(reached, message=f"{message_id} {state}")
    return found[0]

