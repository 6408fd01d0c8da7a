"""Unroutable inbound messages are stored, marked `unroutable` with the reason, counted and
listed; nothing about them reaches a delivery channel."""

from __future__ import annotations

from aiohttp import ClientSession
from prometheus_client import REGISTRY

from pbxsms.core.inbound.routing import inbound_id, publish_inbound
from pbxsms.core.model.events import InboundMessage, State
from pbxsms.core.serve.runtime import Runtime
from tests.helpers import wait_until
from tests.support.gateway import StartGateway

FILE = """
[[numbers]]
number = "+61411111111"
provider = "clicksend"
extension = "101"
enabled = false

[[numbers]]
number = "+61422222222"
provider = "clicksend"
extension = "102"
"""


def unroutable_count(provider: str, cause: str) -> float:
    value = REGISTRY.get_sample_value("pbxsms_unroutable_total",
                                      {"provider": provider, "cause": cause})
    return value or 0.0


async def receive(runtime: Runtime, provider: str, ref: str, to: str) -> InboundMessage:
    message = InboundMessage(provider=provider, provider_message_id=ref, from_="+61499000001",
                             to=to, body="is anyone there?")
    await publish_inbound(runtime, message, f"{provider}:{ref}")
    return message


async def stored(runtime: Runtime, message: InboundMessage) -> InboundMessage:
    """The event as stored on the stream (found by its subject and id)."""
    info = await runtime.js.stream_info("SMS")
    for seq in range(info.state.last_seq, 0, -1):
        raw = await runtime.js.get_msg("SMS", seq)
        if (raw.subject or "").startswith("sms.inbound.") and \
                message.id.encode() in (raw.data or b""):
            return InboundMessage.model_validate_json(raw.data or b"")
    raise AssertionError(f"{message.id} is not on the stream")


async def test_unknown_disabled_and_foreign_numbers_are_unroutable_and_listed(
        start: StartGateway, http: ClientSession) -> None:
    first = await start(toml=FILE)
    second = await start()
    before = {cause: unroutable_count(provider, cause) for provider, cause in
              [("clicksend", "unknown"), ("clicksend", "disabled"), ("othersms", "provider")]}

    unknown = await receive(first.runtime, "clicksend", "CS-U1", "+61433333333")
    disabled = await receive(first.runtime, "clicksend", "CS-U2", "0411 111 111")
    foreign = await receive(first.runtime, "othersms", "OS-U3", "+61422222222")
    routed = await receive(first.runtime, "clicksend", "CS-U4", "+61422222222")
    expected = {
        unknown.id: "+61433333333 has no message settings",
        disabled.id: "+61411111111 is disabled in its message settings",
        foreign.id: "+61422222222 belongs to provider clicksend, but the message came "
                    "from othersms",
    }

    listed: dict[str, str] = {}

    async def all_listed() -> bool:
        async with http.get(f"{second.url}/api/v1/messages?status=unroutable") as response:
            assert response.status == 200
            records = (await response.json())["messages"]
        listed.clear()
        listed.update({r["id"]: r["history"][-1]["reason"] for r in records})
        return set(listed) == set(expected)

    await wait_until(all_listed, message="the three unroutable messages in the listing")
    assert listed == expected
    assert unroutable_count("clicksend", "unknown") == before["unknown"] + 1
    assert unroutable_count("clicksend", "disabled") == before["disabled"] + 1
    assert unroutable_count("othersms", "provider") == before["provider"] + 1

    # Stored, but without a route: no delivery consumer has anywhere to send them.
    for message in (unknown, disabled, foreign):
        assert (await stored(first.runtime, message)).route is None
    route = (await stored(first.runtime, routed)).route
    assert route is not None and route.extension == "102"
    record = await first.runtime.status.get(unknown.id)
    assert record is not None and record.state == State.UNROUTABLE
    assert list(record.channels) == ["-"]  # no delivery channel ever started

    # The provider retries the webhook: same message, same id, counted once.
    again = await receive(second.runtime, "clicksend", "CS-U1", "+61433333333")
    assert again.id == unknown.id == inbound_id("clicksend:CS-U1")
    assert unroutable_count("clicksend", "unknown") == before["unknown"] + 1
    assert (await first.runtime.status.in_state(State.UNROUTABLE, limit=2))[0].id in expected


async def test_the_listing_checks_its_query(start: StartGateway, http: ClientSession) -> None:
    gateway = await start()
    for query, field in [("", "status"), ("?status=lost", "status"),
                         ("?status=failed&limit=0", "limit"), ("?status=failed&limit=x", "limit")]:
        async with http.get(f"{gateway.url}/api/v1/messages{query}") as response:
            assert response.status == 422
            assert (await response.json())["field"] == field
    async with http.get(f"{gateway.url}/api/v1/messages?status=failed") as response:
        assert (response.status, await response.json()) == (200, {"messages": []})
    async with ClientSession() as anonymous, \
            anonymous.get(f"{gateway.url}/api/v1/messages?status=failed") as response:
        assert response.status == 401
