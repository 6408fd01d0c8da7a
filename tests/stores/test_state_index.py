"""The state index: a page read from its state's own bucket with no subject filter, the
repair on redelivery, and the move of an index written by an older version."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import nats
import pytest
from nats.aio.msg import Msg
from nats.js.api import KeyValueConfig, StorageType

from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.core.model.events import State, StatusEvent, new_id, utcnow
from pbxsms.core.stores import states as state_index
from pbxsms.core.stores.states import LEGACY_BUCKET, bucket_name, move_legacy_index
from pbxsms.core.stores.status import MESSAGES_BUCKET, StatePage, StatusRecord, apply
from tests.helpers import wait_until
from tests.support.gateway import StartGateway


def event(mid: str, state: State, seconds: int = 0) -> StatusEvent:
    return StatusEvent(id=mid, direction="outbound", state=state, channel="clicksend",
                       at=utcnow() + timedelta(seconds=seconds))


def ids(page: StatePage) -> list[str]:
    return [record.id for record in page.records]


async def test_a_page_is_read_by_sequence_from_its_own_states_bucket(
        start_gateway: StartGateway, nats_server: EmbeddedNats) -> None:
    # A `<state>.>` filter made the server match every key stored to answer a page;
    # with no filter it counts from per-block totals, whatever is stored elsewhere.
    gateway = await start_gateway()
    store = gateway.runtime.status
    moved = [new_id() for _ in range(3)]
    for mid in moved:
        await store.apply(event(mid, State.QUEUED))
        await store.apply(event(mid, State.ACCEPTED, seconds=1))
    waiting = new_id()
    await store.apply(event(waiting, State.QUEUED))
    spy = await nats.connect(nats_server.url)
    asked: list[Msg] = []

    async def seen(msg: Msg) -> None:
        asked.append(msg)

    try:
        await spy.subscribe("$JS.API.DIRECT.GET.>", cb=seen)
        await spy.flush()
        assert ids(await store.in_state(State.ACCEPTED, limit=2)) == moved[:2]
        await wait_until(lambda: bool(asked), message="the page request seen")
    finally:
        await spy.close()
    assert [msg.subject for msg in asked] == [
        f"$JS.API.DIRECT.GET.KV_{bucket_name(State.ACCEPTED)}"]
    assert json.loads(asked[0].data) == {"batch": 2, "seq": 1}
    # What the server walks for a page of a state holds that state's entries only.
    for state, count in ((State.ACCEPTED, 3), (State.QUEUED, 1), (State.SENT, 0)):
        info = await gateway.runtime.js.stream_info(f"KV_{bucket_name(state)}")
        assert info.state.messages == count, state


async def test_a_redelivered_event_repairs_an_entry_its_first_fold_lost(
        start_gateway: StartGateway) -> None:
    store = (await start_gateway()).runtime.status
    assert store.states is not None
    mid = new_id()
    await store.apply(event(mid, State.ACCEPTED))
    await store.states.leave(State.ACCEPTED, mid)  # as if the fold died before its write
    assert ids(await store.in_state(State.ACCEPTED)) == []
    await store.apply(event(mid, State.ACCEPTED), repair=False)
    assert ids(await store.in_state(State.ACCEPTED)) == []  # unchanged state: no write
    await store.apply(event(mid, State.ACCEPTED), repair=True)
    assert ids(await store.in_state(State.ACCEPTED)) == [mid]


async def _old_index(url: str, entries: list[tuple[str, StatusRecord | None]]) -> None:
    """What a version with one index bucket left: its entries `<state>.<id>` in order,
    and the records they point to."""
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        old = await js.create_key_value(KeyValueConfig(
            bucket=LEGACY_BUCKET, storage=StorageType.FILE, direct=True))
        records = await js.create_key_value(KeyValueConfig(
            bucket=MESSAGES_BUCKET, storage=StorageType.FILE, direct=True))
        for key, record in entries:
            if record is not None:
                await records.put(record.id, record.model_dump_json().encode())
            await old.put(key, utcnow().isoformat().encode())
    finally:
        await client.close()


def _record(mid: str, state: State) -> StatusRecord:
    return apply(None, event(mid, state))


async def test_an_index_written_the_old_way_is_moved_at_start_in_order(
        start_gateway: StartGateway, nats_server: EmbeddedNats,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(state_index, "MOVE_PAGE", 2)  # several pages
    delivered = [new_id() for _ in range(3)]
    unroutable, moved_on = new_id(), new_id()
    await _old_index(nats_server.url, [
        (f"delivered.{delivered[0]}", _record(delivered[0], State.DELIVERED)),
        (f"queued.{moved_on}", None),  # stale: its record (below) moved on
        (f"unroutable.{unroutable}", _record(unroutable, State.UNROUTABLE)),
        (f"delivered.{delivered[1]}", _record(delivered[1], State.DELIVERED)),
        (f"nosuchstate.{new_id()}", None),
        (f"sent.{moved_on}", _record(moved_on, State.SENT)),
        (f"delivered.{delivered[2]}", _record(delivered[2], State.DELIVERED)),
    ])
    with caplog.at_level(logging.INFO, logger="pbxsms.core.stores.states"):
        gateway = await start_gateway()
    assert "moved 6 entries" in caplog.text
    store = gateway.runtime.status
    assert ids(await store.in_state(State.DELIVERED)) == delivered
    first = await store.in_state(State.DELIVERED, limit=2)
    assert ids(first) == delivered[:2]
    assert ids(await store.in_state(State.DELIVERED, after=first.next_after or 0)) == [
        delivered[2]]
    assert ids(await store.in_state(State.UNROUTABLE)) == [unroutable]
    assert ids(await store.in_state(State.SENT)) == [moved_on]
    assert ids(await store.in_state(State.QUEUED)) == []  # never shown in a state it left
    info = await gateway.runtime.js.stream_info(f"KV_{LEGACY_BUCKET}")
    assert info.state.messages == 0
    # Another start (another instance, a restart) moves nothing and lists nothing twice.
    again = await start_gateway()
    assert ids(await again.runtime.status.in_state(State.DELIVERED)) == delivered
    assert store.states is not None
    assert await move_legacy_index(again.runtime.js, store.states,
                                   lambda: again.runtime.bucket(LEGACY_BUCKET)) == 0


async def test_a_move_interrupted_after_writing_resumes_without_listing_twice(
        start_gateway: StartGateway, nats_server: EmbeddedNats) -> None:
    # The first page was written to its state's bucket, then the process died before
    # removing it from the old one: the next start writes it again, listed once.
    delivered = [new_id() for _ in range(3)]
    await _old_index(nats_server.url, [(f"delivered.{mid}", _record(mid, State.DELIVERED))
                                       for mid in delivered])
    client = await nats.connect(nats_server.url)
    try:
        half_moved = await client.jetstream().create_key_value(KeyValueConfig(
            bucket=bucket_name(State.DELIVERED), storage=StorageType.FILE, direct=True))
        for mid in delivered[:2]:
            await half_moved.put(mid, b"")
    finally:
        await client.close()
    gateway = await start_gateway()
    assert ids(await gateway.runtime.status.in_state(State.DELIVERED)) == delivered
    info = await gateway.runtime.js.stream_info(f"KV_{bucket_name(State.DELIVERED)}")
    assert info.state.messages == 3
    # Created here without limits, it gets the index's TTL like every state's bucket.
    bus = gateway.runtime.config.file.bus
    for state in State:
        config = (await gateway.runtime.js.stream_info(f"KV_{bucket_name(state)}")).config
        assert (config.max_age, config.num_replicas, config.allow_direct) == (
            bus.max_age, bus.replicas, True), state
