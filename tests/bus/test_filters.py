"""Narrowing a durable consumer's subject filters on upgrade: what the old filters stored
before the upgrade is still read, once; after it, only the new filters are."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js.api import ConsumerInfo

from pbxsms.bus import consumer as consumer_module
from pbxsms.bus.consumer import ConsumerRunner, Delivery, RetryPolicy
from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.bus.filters import covers, union
from pbxsms.bus.publish import Publisher
from pbxsms.bus.stream import StreamSettings, ensure_stream
from tests.helpers import wait_until

FAST = RetryPolicy(max_deliver=3, backoff_initial=0.05, backoff_max=0.2, ack_wait=5.0,
                   max_in_flight=8)
NAME = "narrowed"


@pytest.fixture
async def nc(nats_server: EmbeddedNats) -> AsyncIterator[NATS]:
    client = await nats.connect(nats_server.url)
    await ensure_stream(client.jetstream(), StreamSettings())
    yield client
    await client.close()


def test_covers_follows_nats_wildcards() -> None:
    assert covers("sms.inbound.>", "sms.inbound.*.keyword")
    assert covers("sms.inbound.*", "sms.inbound.clicksend")
    assert covers("sms.inbound.*.mms", "sms.inbound.*.mms")
    assert not covers("sms.inbound.*", "sms.inbound.*.mms")
    assert not covers("sms.inbound.*.mms", "sms.inbound.*")
    assert not covers("sms.inbound.>", "sms.inbound")
    assert not covers("sms.inbound.clicksend", "sms.inbound.*")
    assert not covers("sms.inbound.*.mms", "sms.inbound.>")


def test_union_keeps_no_filter_another_covers() -> None:
    assert union(("sms.inbound.>",), ("sms.inbound.*.keyword", "sms.inbound.*.keyword.mms")
                 ) == ("sms.inbound.>",)
    assert union(("sms.inbound.*",), ("sms.inbound.*.mms", "sms.inbound.*.keyword.mms")
                 ) == ("sms.inbound.*", "sms.inbound.*.mms", "sms.inbound.*.keyword.mms")
    assert union(("sms.test.a",), ("sms.test.*",)) == ("sms.test.*",)


def filters(info: ConsumerInfo) -> tuple[str, ...]:
    config = info.config
    return tuple(config.filter_subjects or [config.filter_subject or ">"])


async def test_a_narrowed_consumer_reads_the_old_backlog_once_then_only_the_new_filter(
    nc: NATS, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(consumer_module, "NARROW_CHECK_INTERVAL", 0.05)
    js = nc.jetstream()
    publisher = Publisher(nc)
    await publisher.start()
    handled: list[bytes] = []
    release = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        if delivery.data == b"backlog":
            await release.wait()
        handled.append(delivery.data)

    async def dead(delivery: Delivery, reason: str) -> None:
        raise AssertionError(reason)

    # The old version: everything on sms.test.*; one event read, one left when it stopped.
    old = ConsumerRunner(nc, js, "SMS", NAME, "sms.test.*", handler, FAST, dead)
    await old.start()
    await publisher.publish("sms.test.a", b"handled-before", "m-1")
    await wait_until(lambda: handled == [b"handled-before"], message="the old read")
    await old.stop()
    await publisher.publish("sms.test.a", b"backlog", "m-2")

    # The new version wants only sms.test.*.keep: it reads the backlog first.
    checks = 0
    consumer_info = js.consumer_info

    async def counted(*args: object, **kwargs: object) -> ConsumerInfo:
        nonlocal checks
        checks += 1
        return await consumer_info(*args, **kwargs)  # type: ignore[arg-type,no-any-return]

    monkeypatch.setattr(js, "consumer_info", counted)
    new = ConsumerRunner(nc, js, "SMS", NAME, ("sms.test.*.keep",), handler, FAST, dead)
    await new.start()
    try:
        await publisher.publish("sms.test.x.keep", b"kept", "m-3")
        await wait_until(lambda: b"kept" in handled, message="the new filter's event")
        seen = checks
        await wait_until(lambda: checks >= seen + 3, message="the narrowing to look again")
        # The backlog is not acknowledged yet: the old filter still reads.
        assert filters(await consumer_info("SMS", NAME)) == ("sms.test.*", "sms.test.*.keep")

        release.set()
        await wait_until(lambda: b"backlog" in handled, message="the backlog")

        async def narrowed() -> bool:
            return filters(await consumer_info("SMS", NAME)) == ("sms.test.*.keep",)

        await wait_until(narrowed, message="the filters to narrow")
        await publisher.publish("sms.test.a", b"not-for-us", "m-4")
        await publisher.publish("sms.test.y.keep", b"kept-again", "m-5")
        await wait_until(lambda: b"kept-again" in handled, message="the last event")
    finally:
        await new.stop()
    assert handled == [b"handled-before", b"kept", b"backlog", b"kept-again"]
    info = await consumer_info("SMS", NAME)
    assert info.num_ack_pending == 0 and info.num_pending == 0

    # Started again on the narrowed consumer: nothing to catch up, nothing read again.
    again = ConsumerRunner(nc, js, "SMS", NAME, ("sms.test.*.keep",), handler, FAST, dead)
    await again.start()
    await again.stop()
    assert again._narrow_task is None
