"""The bus against a real nats-server: dedupe, retries, dead letters, slow handlers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from pbxsms.bus.consumer import (
    ConsumerRunner,
    Delivery,
    Permanent,
    Retry,
    RetryPolicy,
    ack_numbers,
)
from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.bus.publish import Published, Publisher, PublishError
from pbxsms.bus.stream import StreamSettings, ensure_stream
from tests.helpers import wait_until

FAST = RetryPolicy(max_deliver=3, backoff_initial=0.05, backoff_max=0.2, ack_wait=2.0,
                   max_in_flight=8)


@pytest.fixture
async def nc(nats_server: EmbeddedNats) -> AsyncIterator[NATS]:
    client = await nats.connect(nats_server.url)
    await ensure_stream(client.jetstream(), StreamSettings())
    yield client
    await client.close()


async def publish(nc: NATS, subject: str, payload: bytes, msg_id: str,
                  timeout: float = 5.0) -> Published:
    publisher = Publisher(nc)
    await publisher.start()
    return await publisher.publish(subject, payload, msg_id, timeout=timeout)


class DeadLetters:
    def __init__(self) -> None:
        self.items: list[tuple[Delivery, str]] = []

    async def __call__(self, delivery: Delivery, reason: str) -> None:
        self.items.append((delivery, reason))


def runner(nc: NATS, name: str, handler, dead, policy: RetryPolicy = FAST) -> ConsumerRunner:  # type: ignore[no-untyped-def]
    return ConsumerRunner(nc, nc.jetstream(), "SMS", name, "sms.test.>", handler, policy, dead)


async def test_same_msg_id_twice_is_stored_once(nc: NATS) -> None:
    js = nc.jetstream()
    first = await publish(nc, "sms.test.a", b"one", "dup-1")
    second = await publish(nc, "sms.test.a", b"one again", "dup-1")
    assert not first.duplicate and second.duplicate
    assert second.seq == first.seq
    info = await js.stream_info("SMS")
    assert info.state.messages == 1


async def test_publishes_in_flight_together_each_get_their_own_puback(nc: NATS) -> None:
    publisher = Publisher(nc)
    await publisher.start()
    pending = [await publisher.send("sms.test.many", str(i).encode(), f"many-{i % 150}")
               for i in range(200)]
    results = [await future for future in pending]
    assert [r.duplicate for r in results] == [False] * 150 + [True] * 50
    assert [r.seq for r in results[150:]] == [r.seq for r in results[:50]]
    assert len({r.seq for r in results}) == 150 and publisher.in_flight == 0
    info = await nc.jetstream().stream_info("SMS")
    assert info.state.messages == 150


async def test_a_subject_no_stream_takes_is_a_publish_error(nc: NATS) -> None:
    publisher = Publisher(nc)
    await publisher.start()
    with pytest.raises(PublishError, match="no JetStream stream"):
        await publisher.publish("nostream.x", b"{}", "orphan-1")
    assert publisher.in_flight == 0


async def test_a_jetstream_refusal_is_a_publish_error(nc: NATS) -> None:
    publisher = Publisher(nc)
    await publisher.start()
    with pytest.raises(PublishError, match="refused"):
        # The stream exists but expects another name: JetStream answers with an error.
        await publisher.publish("sms.test.x", b"{}", "wrong-stream-1",
                                headers={"Nats-Expected-Stream": "OTHER"})


async def test_ensure_stream_is_idempotent_and_applies_settings(nc: NATS) -> None:
    js = nc.jetstream()
    await ensure_stream(js, StreamSettings(max_age=3600, duplicate_window=600))
    await ensure_stream(js, StreamSettings(max_age=3600, duplicate_window=600))
    config = (await js.stream_info("SMS")).config
    assert config.max_age == 3600 and config.duplicate_window == 600
    assert config.subjects == ["sms.>"]


async def test_consumer_failing_twice_then_succeeding_acks_once(nc: NATS) -> None:
    attempts: list[int] = []
    successes: list[int] = []
    dead = DeadLetters()

    async def handler(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        if delivery.attempt < 3:
            raise Retry("remote side down")
        successes.append(delivery.stream_seq)

    run = runner(nc, "flaky", handler, dead)
    await run.start()
    await publish(nc, "sms.test.x", b"{}", "m-1")
    await wait_until(lambda: len(successes) == 1, message="third attempt to succeed")
    await run.stop()
    assert attempts == [1, 2, 3]
    assert dead.items == []
    info = await nc.jetstream().consumer_info("SMS", "flaky")
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_consumer_always_failing_ends_as_dead_letter_with_reason(nc: NATS) -> None:
    attempts: list[int] = []
    dead = DeadLetters()

    async def handler(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        raise Retry("SMTP 451 try later")

    run = runner(nc, "hopeless", handler, dead)
    await run.start()
    await publish(nc, "sms.test.x", b'{"id": "abc"}', "m-2")
    await wait_until(lambda: len(dead.items) == 1, message="a dead letter")
    await run.stop()
    delivery, reason = dead.items[0]
    assert attempts == [1, 2, 3]
    assert "SMTP 451 try later" in reason and "3 attempts" in reason
    assert delivery.data == b'{"id": "abc"}'


async def test_permanent_error_is_not_retried(nc: NATS) -> None:
    attempts: list[int] = []
    dead = DeadLetters()

    async def handler(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        raise Permanent("INVALID_RECIPIENT")

    run = runner(nc, "permanent", handler, dead)
    await run.start()
    await publish(nc, "sms.test.x", b"{}", "m-3")
    await wait_until(lambda: len(dead.items) == 1, message="a dead letter")
    await run.stop()
    assert attempts == [1]
    assert dead.items[0][1] == "INVALID_RECIPIENT"


async def test_unexpected_exception_is_retried(nc: NATS) -> None:
    attempts: list[int] = []
    dead = DeadLetters()

    async def handler(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        if delivery.attempt == 1:
            raise KeyError("bug")

    run = runner(nc, "buggy", handler, dead)
    await run.start()
    await publish(nc, "sms.test.x", b"{}", "m-4")
    await wait_until(lambda: attempts == [1, 2], message="the retry")
    await run.stop()
    assert dead.items == []


async def test_slow_handler_keeps_its_message_with_in_progress(nc: NATS) -> None:
    # ack_wait is 1 s; the handler takes 2.5 s. Without in_progress JetStream would
    # redeliver it to a second handler while the first still runs.
    policy = RetryPolicy(max_deliver=3, backoff_initial=0.05, ack_wait=1.0, max_in_flight=4)
    attempts: list[int] = []
    release = asyncio.Event()
    done: list[int] = []

    async def handler(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        await asyncio.wait_for(release.wait(), 10)
        done.append(delivery.attempt)

    run = runner(nc, "slow", handler, DeadLetters(), policy)
    await run.start()
    await publish(nc, "sms.test.x", b"{}", "m-5")
    await wait_until(lambda: attempts == [1], message="first delivery")
    # Hold the handler for 2.5 ack_waits, observing no redelivery meanwhile.
    loop = asyncio.get_running_loop()
    loop.call_later(2.5, release.set)
    await wait_until(lambda: done == [1], timeout=10, message="slow handler to finish")
    await run.stop()
    assert attempts == [1]


async def test_a_redelivery_waits_for_the_handler_still_running_in_this_process(
        nc: NATS, monkeypatch: pytest.MonkeyPatch) -> None:
    # The bus does not hear in_progress (as in an outage), so ack_wait runs out and
    # JetStream redelivers while the first handler still runs: the two must not overlap.
    async def unheard(self: Delivery) -> None:
        raise TimeoutError("in_progress did not reach the bus")

    monkeypatch.setattr(Delivery, "in_progress", unheard)
    policy = RetryPolicy(max_deliver=5, backoff_initial=0.05, ack_wait=1.0, max_in_flight=4)
    release = asyncio.Event()
    events: list[str] = []

    async def handler(delivery: Delivery) -> None:
        events.append(f"start {delivery.attempt}")
        if delivery.attempt == 1:
            await asyncio.wait_for(release.wait(), 10)
        events.append(f"end {delivery.attempt}")

    run = runner(nc, "unheard", handler, DeadLetters(), policy)
    await run.start()
    await publish(nc, "sms.test.x", b"{}", "m-unheard")
    await wait_until(lambda: events == ["start 1"], message="first delivery")
    # The redelivery comes after ack_wait; give it time to arrive while the first runs.
    await wait_until(lambda: len(run._running) == 2 or "start 2" in events, timeout=10,
                     message="the redelivery, held back")
    assert events == ["start 1"]
    release.set()
    await wait_until(lambda: "end 2" in events, timeout=10, message="the redelivery to run")
    await run.stop()
    assert events[:3] == ["start 1", "end 1", "start 2"]


async def test_many_messages_are_each_handled_once(nc: NATS) -> None:
    seen: list[str] = []

    async def handler(delivery: Delivery) -> None:
        seen.append(json.loads(delivery.data)["n"])

    run = runner(nc, "bulk", handler, DeadLetters(),
                 RetryPolicy(max_deliver=3, max_in_flight=16))
    await run.start()
    publisher = Publisher(nc)
    await publisher.start()
    await asyncio.gather(*(publisher.publish("sms.test.bulk",
                                             json.dumps({"n": str(i)}).encode(), f"bulk-{i}")
                           for i in range(500)))
    await wait_until(lambda: len(seen) >= 500, message="500 messages handled")
    await run.stop()
    assert sorted(seen, key=int) == [str(i) for i in range(500)]


async def test_publish_without_server_raises_publish_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.helpers import free_port

    server = EmbeddedNats(free_port(), tmp_path / "store")
    await server.start()
    client = await nats.connect(server.url, max_reconnect_attempts=-1,
                                reconnect_time_wait=0.1)
    js = client.jetstream()
    await ensure_stream(js, StreamSettings())
    await server.stop()
    with pytest.raises(PublishError):
        await publish(client, "sms.test.down", b"x", "down-1", timeout=0.5)
    with contextlib.suppress(OSError):  # nats-py may report the lost connection here
        await client.close()


@pytest.mark.parametrize("reply", [
    "$JS.ACK.PBXSMS.deliver-email.3.1234.99.1733338000000000000.7",
    "$JS.ACK._.ACCOUNTHASH.PBXSMS.deliver-email.3.1234.99.1733338000000000000.7",
    "$JS.ACK.hub.ACCOUNTHASH.PBXSMS.deliver-email.12.5.99.1733338000000000000.0.rnd",
])
def test_ack_numbers_read_as_nats_py_reads_them(reply: str) -> None:
    msg = Msg(None, reply=reply)  # type: ignore[arg-type]  # no client needed to read
    assert ack_numbers(msg) == (msg.metadata.num_delivered, msg.metadata.sequence.stream)


def test_ack_numbers_refuse_what_is_no_ack_subject() -> None:
    with pytest.raises(Exception):  # noqa: B017 (nats-py's own error type)
        ack_numbers(Msg(None, reply="_INBOX.abc"))  # type: ignore[arg-type]
