"""Outbound sender selection: the conversation's number, else the extension's first one."""

from __future__ import annotations

import pytest

from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.core.inbound.routing import publish_inbound
from pbxsms.core.model.events import InboundMessage
from pbxsms.core.serve.runtime import Runtime
from pbxsms.core.stores.conversations import conversation_key
from pbxsms.core.stores.numbers import NoSender, NumberStore
from tests.helpers import wait_until
from tests.support.gateway import StartGateway

FIRST, SECOND = "+61411111111", "+61422222222"
DOMAIN = "pbx.example.com"
FILE = f"""
[[numbers]]
number = "{SECOND}"
provider = "clicksend"
extension = "101"
domain = "{DOMAIN}"

[[numbers]]
number = "{FIRST}"
provider = "clicksend"
extension = "101"
domain = "{DOMAIN}"

[[numbers]]
number = "+61433333333"
provider = "clicksend"
extension = "101"
domain = "other.example.com"
"""


async def texts(runtime: Runtime, customer: str, to: str, ref: str) -> None:
    message = InboundMessage(provider="clicksend", provider_message_id=ref, from_=customer,
                             to=to, body="hi")
    await publish_inbound(runtime, message, f"clicksend:{ref}")


async def sender(numbers: NumberStore, customer: str, extension: str = "101",
                 domain: str | None = DOMAIN) -> str:
    return (await numbers.sender_for(extension, domain, customer)).number


async def test_a_reply_leaves_from_the_number_the_customer_texted(start: StartGateway) -> None:
    first = await start(toml=FILE)
    second = await start()  # shares NATS: the conversation is durable and shared
    customer = "+61499000001"
    await texts(first.runtime, customer, SECOND, "CS-C1")

    numbers = second.runtime.numbers
    assert await sender(numbers, customer) == SECOND
    assert await sender(numbers, "0499 000 001") == SECOND  # however it is written
    assert await sender(numbers, customer, f"101@{DOMAIN}", None) == SECOND
    # Someone who never texted this extension: its first enabled number.
    assert await sender(numbers, "+61499000002") == FIRST

    # The customer now writes to the first number: replies follow.
    await texts(first.runtime, customer, FIRST, "CS-C2")
    assert await sender(numbers, customer) == FIRST
    await texts(first.runtime, customer, SECOND, "CS-C3")

    # The conversation's number is disabled: back to the first enabled one.
    record = numbers.get(SECOND)
    assert record is not None
    await first.runtime.numbers.put(record.model_copy(update={"enabled": False}))
    assert await sender(first.runtime.numbers, customer) == FIRST

    # The same extension in another tenant keeps its own numbers.
    assert await sender(numbers, customer, domain="other.example.com") == "+61433333333"


async def revision(runtime: Runtime, customer: str) -> int:
    entry = await runtime.numbers.conversations.bucket.kv.get(
        conversation_key(DOMAIN, "101", customer))
    assert entry.revision is not None
    return entry.revision


async def test_a_conversation_is_written_only_when_its_number_changes(
        start: StartGateway) -> None:
    gateway = await start(toml=FILE)
    customer = "+61499000003"
    await texts(gateway.runtime, customer, SECOND, "CS-W1")
    written = await revision(gateway.runtime, customer)
    await texts(gateway.runtime, customer, SECOND, "CS-W2")
    await texts(gateway.runtime, "0499 000 003", SECOND, "CS-W3")
    assert await revision(gateway.runtime, customer) == written
    await texts(gateway.runtime, customer, FIRST, "CS-W4")
    assert await revision(gateway.runtime, customer) > written
    assert await sender(gateway.runtime.numbers, customer) == FIRST


async def test_a_number_another_instance_wrote_is_not_taken_as_still_stored(
        start: StartGateway) -> None:
    first = await start(toml=FILE)
    second = await start()
    customer = "+61499000004"
    await texts(first.runtime, customer, SECOND, "CS-X1")
    await texts(second.runtime, customer, FIRST, "CS-X2")
    conversations = first.runtime.numbers.conversations
    await wait_until(lambda: conversations.stored(DOMAIN, "101", customer) != SECOND,
                     message="the first instance to see the second one's write")
    await texts(first.runtime, customer, SECOND, "CS-X3")
    assert await sender(second.runtime.numbers, customer) == SECOND


async def test_after_a_nats_restart_conversations_are_written_until_the_watch_is_back(
        start: StartGateway, nats_server: EmbeddedNats) -> None:
    gateway = await start(toml=FILE)
    runtime, customer = gateway.runtime, "+61499000005"
    await texts(runtime, customer, SECOND, "CS-R1")
    await nats_server.stop()
    await nats_server.start()
    await wait_until(lambda: runtime.nc is not None and runtime.nc.is_connected, timeout=15,
                     message="the gateway to reconnect")
    # Updates may have been missed while disconnected: written again, not skipped.
    before = await revision(runtime, customer)
    await texts(runtime, customer, SECOND, "CS-R2")
    assert await revision(runtime, customer) > before
    # Once the watch runs again, a repeat is skipped again.
    conversations = runtime.numbers.conversations

    async def repeat_skipped() -> bool:
        written = await revision(runtime, customer)
        await texts(runtime, customer, SECOND, f"CS-R3-{written}")
        return await revision(runtime, customer) == written

    await wait_until(repeat_skipped, timeout=15, message="the watch to restart")
    assert conversations.stored(DOMAIN, "101", customer) == SECOND


async def test_an_extension_without_numbers_is_a_clear_error(start: StartGateway) -> None:
    gateway = await start(toml=FILE)
    numbers = gateway.runtime.numbers
    with pytest.raises(NoSender, match=r"extension 999@pbx.example.com has no enabled number"):
        await sender(numbers, "+61499000001", "999")
    with pytest.raises(NoSender, match=r"exists in several tenants .*other.example.com.*"
                                       r"pbx.example.com.*write it as 101@<domain>"):
        await sender(numbers, "+61499000001", domain=None)
    assert numbers.sending_number("0411 111 111").number == FIRST
    with pytest.raises(NoSender, match=r"\+61455555555 is not one of the gateway's numbers"):
        numbers.sending_number("+61455555555")
