"""The status record written by the producer of each event: no consumer folds the events,
a repeated publish is one entry and repairs the state index, the retired consumer's
durable is deleted at start, and the channels' reads of one record share one request."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import nats
import pytest
from nats.js.api import ConsumerConfig

from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.bus.publish import PublishError
from pbxsms.core.model.events import State, StatusEvent, new_id, utcnow
from pbxsms.core.stores.status import (
    RETIRED_CONSUMER,
    Settled,
    StatusRecord,
    StatusStore,
)
from tests.support.counting import calls_of
from tests.support.gateway import StartGateway


def event(mid: str, state: State, seconds: float = 0, channel: str = "clicksend",
          **kw: object) -> StatusEvent:
    return StatusEvent(id=mid, direction="outbound", state=state, channel=channel,
                       at=utcnow() + timedelta(seconds=seconds), **kw)


async def stored(store: StatusStore, mid: str) -> StatusRecord | None:
    value, _ = await store.messages.get(mid)
    return StatusRecord.model_validate_json(value) if value else None


async def test_the_producer_stores_the_record_before_it_returns(
        start_gateway: StartGateway) -> None:
    gateway = await start_gateway()
    runtime = gateway.runtime
    # No consumer reads status events back.
    for info in await runtime.js.consumers_info(runtime.stream):
        filters = [info.config.filter_subject, *(info.config.filter_subjects or [])]
        assert not [f for f in filters if f and f.startswith("sms.status")], info.name
    mid = new_id()
    await runtime.publish_status(event(mid, State.QUEUED))
    await runtime.publish_status(event(mid, State.ACCEPTED, 1, provider_message_id="CS-1"))
    # Read straight from the bucket, with no read-time folding: already there.
    record = await stored(runtime.status, mid)
    assert record is not None and record.state == State.ACCEPTED
    assert [h.state for h in record.history] == [State.QUEUED, State.ACCEPTED]
    assert await runtime.status.find_by_provider_id("clicksend", "CS-1") == mid
    assert mid in [r.id for r in (await runtime.status.in_state(State.ACCEPTED)).records]


async def test_a_repeated_publish_is_one_entry_and_repairs_the_state_index(
        start_gateway: StartGateway) -> None:
    runtime = (await start_gateway()).runtime
    store = runtime.status
    assert store.states is not None
    mid = new_id()
    first = event(mid, State.ACCEPTED, provider_message_id="CS-2")
    published = await runtime.publish_status(first)
    # As if the producer died between the record and its index write.
    await store.states.leave(State.ACCEPTED, mid)
    assert [r.id for r in (await store.in_state(State.ACCEPTED)).records] == []
    # Its retry builds the event anew (another `at`): the stream keeps the first, the
    # record gains no second entry, and the index is written again.
    again = await runtime.publish_status(event(mid, State.ACCEPTED, 0.5,
                                               provider_message_id="CS-2"))
    assert (again.duplicate, again.seq) == (True, published.seq)
    record = await store.get(mid)
    assert record is not None and len(record.history) == 1
    assert [r.id for r in (await store.in_state(State.ACCEPTED)).records] == [mid]


async def test_a_failed_record_write_fails_the_publish_and_its_retry_stores_it(
        start_gateway: StartGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = (await start_gateway()).runtime
    mid = new_id()
    update = runtime.status.messages.update

    async def refused(key: str, value: bytes, last: int) -> int:
        raise PublishError("no quorum")

    monkeypatch.setattr(runtime.status.messages, "update", refused)
    with pytest.raises(PublishError, match="no quorum"):
        await runtime.publish_status(event(mid, State.QUEUED))
    # The event is stored: a read shows it all the same (folded at read).
    shown = await runtime.status.get(mid)
    assert shown is not None and shown.state == State.QUEUED
    assert await stored(runtime.status, mid) is None
    monkeypatch.setattr(runtime.status.messages, "update", update)
    await runtime.publish_status(event(mid, State.QUEUED, 0.2))  # the caller's retry
    record = await stored(runtime.status, mid)
    assert record is not None and len(record.history) == 1


async def test_the_retired_fold_consumer_is_deleted_at_start_after_its_backlog(
        start_gateway: StartGateway, nats_server: EmbeddedNats,
        caplog: pytest.LogCaptureFixture) -> None:
    first = await start_gateway()
    stream = first.runtime.stream
    client = await nats.connect(nats_server.url)
    try:
        js = client.jetstream()
        # What an older version left: its durable on `sms.status.>`, with events it had
        # not folded yet (published by that version: no fold of their own).
        await js.add_consumer(stream, ConsumerConfig(
            durable_name=RETIRED_CONSUMER, filter_subject="sms.status.>"))
        mids = [new_id() for _ in range(300)]
        for mid in mids:
            old = event(mid, State.ACCEPTED, provider_message_id=f"CS-{mid}")
            await first.runtime.publish(f"sms.status.{mid}", old, f"old:{mid}")
        with caplog.at_level(logging.INFO, logger="pbxsms.status"):
            second = await start_gateway()
        assert [n for n in await js.consumers_info(stream)
                if n.name == RETIRED_CONSUMER] == []
        deleted = [r for r in caplog.records if RETIRED_CONSUMER in r.getMessage()]
        assert len(deleted) == 1 and deleted[0].levelno == logging.INFO
        assert "its last 300 events" in deleted[0].getMessage()
        # Their records, indexes and provider ids are written, as that consumer would.
        store = second.runtime.status
        assert await store.find_by_provider_id("clicksend", f"CS-{mids[-1]}") == mids[-1]
        assert await stored(store, mids[0]) is not None
        listed = await store.in_state(State.ACCEPTED, limit=1000)
        assert {r.id for r in listed.records} == set(mids)
        # Another start finds none and says nothing.
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="pbxsms.status"):
            await start_gateway()
        assert RETIRED_CONSUMER not in caplog.text
    finally:
        await client.close()


async def test_the_reads_of_one_record_in_flight_together_are_one_request(
        start_gateway: StartGateway) -> None:
    store = (await start_gateway()).runtime.status
    mid = new_id()
    entry = Settled(state="delivered", attempt=1)
    await store.settle(mid, {f"email.{mid}": entry})
    with calls_of(store.messages, "get") as reads:
        # The app's and the email's consumer read the record at the same moment.
        app, email = await asyncio.gather(store.settled(mid), store.settled(mid))
        assert reads == [mid] and app == email == {f"email.{mid}": entry}
        # A write of the record makes the next reader ask anew: it sees the write.
        await store.settle(mid, {f"mobileapp.{mid}": entry})
        assert set(await store.settled(mid)) == {f"email.{mid}", f"mobileapp.{mid}"}
        assert reads == [mid, mid]
        # The read remembered the revision: the next write starts from it, reads nothing.
        await store.apply(StatusEvent(id=mid, direction="inbound", state=State.DELIVERED,
                                      channel="email"), repair=False)
        assert reads == [mid, mid]
    assert store._reading == {}


async def test_a_record_holding_only_ledger_entries_is_not_shown(
        start_gateway: StartGateway) -> None:
    store = (await start_gateway()).runtime.status
    mid = new_id()
    await store.settle(mid, {f"mobileapp.{mid}.x": Settled(state="delivered", attempt=1)})
    assert await store.get(mid) is None
    await store.apply(StatusEvent(id=mid, direction="inbound", state=State.DELIVERED,
                                  channel="mobileapp"))
    record = await store.get(mid)
    assert record is not None and record.state == State.DELIVERED and record.settled
    # The API never shows the ledger, nor the events' keys.
    shown = record.public()
    assert "settled" not in shown and all("key" not in h for h in shown["history"])
