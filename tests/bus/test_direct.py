"""Subscriptions handled as nats-py reads them (bus/direct.py), against a real nats-server:
every message handled once and in order, none left to a queue or a task, drain and
unsubscribe as nats-py's own, a failing handler does not stop the connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from pbxsms.bus.direct import subscribe_direct
from pbxsms.bus.embedded import EmbeddedNats
from tests.helpers import wait_until


@pytest.fixture
async def nc(nats_server: EmbeddedNats) -> AsyncIterator[NATS]:
    client = await nats.connect(nats_server.url)
    yield client
    if not client.is_closed:
        await client.close()


async def test_each_message_is_handled_once_in_order_without_a_task(nc: NATS) -> None:
    seen: list[bytes] = []
    sub = await subscribe_direct(nc, "direct.test", lambda msg: seen.append(msg.data))
    # nats-py's internals as relied on: the queue replaced, its task ended.
    queue: object = sub._pending_queue
    assert not isinstance(queue, asyncio.Queue)
    await asyncio.sleep(0)
    task: object = sub._wait_for_msgs_task
    assert isinstance(task, asyncio.Task) and task.done()
    sent = [str(i).encode() for i in range(500)]
    for data in sent:
        await nc.publish("direct.test", data)
    await nc.flush()
    await wait_until(lambda: len(seen) >= len(sent), timeout=5.0)
    assert seen == sent
    assert sub.pending_msgs == 0 and sub._pending_size == 0


async def test_a_failing_handler_is_logged_and_the_next_message_handled(
        nc: NATS, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[bytes] = []

    def handle(msg: Msg) -> None:
        if msg.data == b"bad":
            raise ValueError("bad message")
        seen.append(msg.data)

    await subscribe_direct(nc, "direct.fail", handle)
    for data in (b"one", b"bad", b"two"):
        await nc.publish("direct.fail", data)
    await nc.flush()
    await wait_until(lambda: seen == [b"one", b"two"], timeout=5.0)
    assert "handling a message on direct.fail failed" in caplog.text
    assert nc.is_connected


async def test_unsubscribe_and_drain_end_it_as_nats_py_does(nc: NATS) -> None:
    seen: list[bytes] = []
    sub = await subscribe_direct(nc, "direct.stop", lambda msg: seen.append(msg.data))
    await nc.publish("direct.stop", b"before")
    await nc.flush()
    await wait_until(lambda: seen == [b"before"], timeout=5.0)
    await sub.unsubscribe()
    await nc.publish("direct.stop", b"after")
    await nc.flush()
    other = await subscribe_direct(nc, "direct.drain", lambda msg: seen.append(msg.data))
    await nc.publish("direct.drain", b"drained")
    await asyncio.wait_for(nc.drain(), 5.0)  # drains `other`: nothing is left waiting
    assert seen == [b"before", b"drained"]
    assert other._closed
