"""Message status records: folded from status events, final states never regress."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from aiohttp import ClientSession

from pbxsms.bus.kv import wait_all
from pbxsms.core.model.events import State, StatusEvent, new_id, utcnow
from pbxsms.core.stores.states import bucket_name
from pbxsms.core.stores.status import StatePage, StatusStore, apply
from tests.helpers import wait_until
from tests.support.counting import calls_of
from tests.support.gateway import Gateway

StartGateway = Callable[..., Awaitable[Gateway]]


def event(mid: str, state: State, channel: str = "clicksend", seconds: int = 0,
          **kw: object) -> StatusEvent:
    return StatusEvent(id=mid, direction="outbound", state=state, channel=channel,
                       at=utcnow() + timedelta(seconds=seconds), **kw)


def test_final_state_is_not_overwritten_by_a_late_event() -> None:
    mid = new_id()
    record = apply(None, event(mid, State.QUEUED))
    record = apply(record, event(mid, State.DELIVERED, seconds=2))
    record = apply(record, event(mid, State.SENT, seconds=1))  # late receipt
    assert record.state == State.DELIVERED
    assert [h.state for h in record.history] == [State.QUEUED, State.SENT, State.DELIVERED]


def test_an_older_event_folded_late_does_not_replace_a_newer_state() -> None:
    # The status consumer folds concurrently: `sending` may be applied after `accepted`.
    mid = new_id()
    record = apply(None, event(mid, State.ACCEPTED, seconds=1, provider_message_id="CS-1"))
    record = apply(record, event(mid, State.SENDING))
    assert record.state == State.ACCEPTED
    assert [h.state for h in record.history] == [State.SENDING, State.ACCEPTED]


def test_queued_never_replaces_a_later_state() -> None:
    # The API publishes `queued` after the request, so the dispatcher may be faster.
    mid = new_id()
    record = apply(None, event(mid, State.SENDING))
    record = apply(record, event(mid, State.QUEUED, seconds=1))
    assert record.state == State.SENDING


def test_repeated_event_is_recorded_once() -> None:
    mid = new_id()
    same = event(mid, State.ACCEPTED)
    record = apply(apply(None, same), same)
    assert len(record.history) == 1


def test_channels_are_summarised() -> None:
    mid = new_id()
    record = apply(None, event(mid, State.DELIVERED, channel="mobileapp"))
    record = apply(record, event(mid, State.RETRYING, channel="email", attempt=3, seconds=1))
    assert record.summary == "email: retrying (3), mobileapp: delivered"
    assert record.state == State.RETRYING


async def test_status_api_serves_the_record_from_any_instance(start_gateway: StartGateway
                                                              ) -> None:
    env = {"PBXSMS_API_TOKEN": "t0ken"}
    first = await start_gateway(env=env)
    second = await start_gateway(env=env)
    mid = new_id()
    await first.runtime.publish_status(event(mid, State.ACCEPTED, provider_message_id="CS-1"))
    headers = {"Authorization": "Bearer t0ken"}
    async with ClientSession(headers=headers) as http:
        async def accepted() -> bool:
            async with http.get(f"{second.url}/api/v1/messages/{mid}") as response:
                return response.status == 200 and (await response.json())["state"] == "accepted"

        await wait_until(accepted, message="the record on the second instance")

        async def indexed() -> bool:
            # The fold indexes the provider id; a read shows the event before it.
            return await second.runtime.status.find_by_provider_id("clicksend", "CS-1") == mid

        await wait_until(indexed, message="the provider id indexed")
        async with http.get(f"{second.url}/api/v1/messages/{new_id()}") as response:
            assert response.status == 404
    async with ClientSession() as http, http.get(f"{first.url}/api/v1/messages/{mid}") as resp:
        assert resp.status == 401


async def test_messages_are_indexed_by_their_current_state(start_gateway: StartGateway
                                                           ) -> None:
    gateway = await start_gateway()
    store = gateway.runtime.status
    mid = new_id()
    await store.apply(event(mid, State.QUEUED))
    assert ids(await store.in_state(State.QUEUED)) == [mid]
    await store.apply(event(mid, State.ACCEPTED, seconds=1))
    assert ids(await store.in_state(State.QUEUED)) == []
    assert ids(await store.in_state(State.ACCEPTED)) == [mid]
    newer = new_id()
    await store.apply(event(newer, State.ACCEPTED, seconds=2))
    # In the order they reached the state, page by page.
    assert ids(await store.in_state(State.ACCEPTED)) == [mid, newer]
    first = await store.in_state(State.ACCEPTED, limit=1)
    assert ids(first) == [mid] and first.next_after is not None
    second = await store.in_state(State.ACCEPTED, limit=1, after=first.next_after)
    assert ids(second) == [newer]
    assert (await store.in_state(State.ACCEPTED, limit=1, after=second.next_after or 0)
            ).records == []
    # From a time: the first to reach the state at or after it.
    assert ids(await store.in_state(State.ACCEPTED, since=utcnow() - timedelta(minutes=1))
               ) == [mid, newer]
    assert ids(await store.in_state(State.ACCEPTED, since=utcnow() + timedelta(minutes=1))
               ) == []
    # The state it left keeps no entry, not even a delete marker.
    info = await gateway.runtime.js.stream_info(f"KV_{bucket_name(State.QUEUED)}")
    assert info.state.messages == 0


def ids(page: StatePage) -> list[str]:
    return [record.id for record in page.records]


async def test_instances_folding_in_turn_lose_no_event(start_gateway: StartGateway) -> None:
    # Each store starts a fold from what it wrote last; the other instance's writes in
    # between must make it read the record again, not overwrite them.
    one = (await start_gateway()).runtime.status
    two = (await start_gateway()).runtime.status
    mid = new_id()
    await one.apply(event(mid, State.SENDING))
    await two.apply(event(mid, State.ACCEPTED, seconds=1, provider_message_id="CS-9"))
    await one.apply(event(mid, State.SENT, seconds=2))
    await two.apply(event(mid, State.DELIVERED, seconds=3))
    record = await one.get(mid)
    assert record is not None and record.state == State.DELIVERED
    assert [h.state for h in record.history] == [
        State.SENDING, State.ACCEPTED, State.SENT, State.DELIVERED]
    assert await one.find_by_provider_id("clicksend", "CS-9") == mid
    assert ids(await two.in_state(State.DELIVERED)) == [mid]
    assert ids(await one.in_state(State.SENT)) == []
    # An inbound record is first tried as new: on the instance that did not create it,
    # that fails and the record is read, not replaced.
    inbound = new_id()
    for store, channel in ((one, "mobileapp"), (two, "email")):
        await store.apply(StatusEvent(id=inbound, direction="inbound", state=State.DELIVERED,
                                      channel=channel))
    record = await two.get(inbound)
    assert record is not None and sorted(record.channels) == ["email", "mobileapp"]


async def test_the_state_index_lists_a_message_as_soon_as_its_fold_returns(
        start_gateway: StartGateway) -> None:
    # The listing once came from a nats-py watch, which now and then ended before
    # delivering the keys just written (seen in about 1 of 60 rounds like these).
    store = (await start_gateway()).runtime.status
    for _ in range(200):
        mid = new_id()
        await store.apply(event(mid, State.QUEUED))
        await store.apply(event(mid, State.ACCEPTED, seconds=1))
        assert mid in ids(await store.in_state(State.ACCEPTED, limit=1000))


def inbound(mid: str, state: State, channel: str | None, seconds: int = 0,
            **kw: object) -> StatusEvent:
    return StatusEvent(id=mid, direction="inbound", state=state, channel=channel,
                       at=utcnow() + timedelta(seconds=seconds), **kw)


def test_a_redelivery_starts_the_channels_over_except_those_that_reached_someone() -> None:
    mid = new_id()
    record = apply(None, inbound(mid, State.UNROUTABLE, None))
    assert record.state == State.UNROUTABLE
    record = apply(record, inbound(mid, State.QUEUED, None, seconds=1, redelivery=1,
                                   attempt=1, stream_seq=7))
    assert (record.state, record.channels, record.stream_seq) == (State.QUEUED, {}, 7)
    record = apply(record, inbound(mid, State.DELIVERED, "mobileapp", seconds=2,
                                   provider_message_id="APP-1"))
    record = apply(record, inbound(mid, State.FAILED, "email", seconds=2))
    assert {name: c.state for name, c in record.channels.items()} == {
        "mobileapp": State.DELIVERED, "email": State.FAILED}
    # The carrier's id is the event's; a channel's own ids stay in the history.
    assert record.provider_message_id is None
    # A second redelivery: the app has it (kept), the email tries again.
    record = apply(record, inbound(mid, State.QUEUED, None, seconds=3, redelivery=2,
                                   attempt=2))
    assert set(record.channels) == {"mobileapp"}
    # An event of the round before, folded late, does not bring the email's failure back.
    record = apply(record, inbound(mid, State.RETRYING, "email", seconds=2, attempt=2))
    assert set(record.channels) == {"mobileapp"} and record.redeliveries == 2
    # A repeated (older) redelivery changes nothing.
    assert apply(record, inbound(mid, State.QUEUED, None, seconds=1, redelivery=1,
                                 attempt=9)).redeliveries == 2


async def test_folds_of_one_message_take_turns_instead_of_racing(
        start_gateway: StartGateway) -> None:
    # The app's and the email's `delivered` are folded at once by one consumer: the
    # second fold must start from the record the first wrote, not lose the
    # compare-and-set to it and read the record back.
    store = (await start_gateway()).runtime.status
    ids = [new_id() for _ in range(20)]
    with calls_of(store.messages, "get") as reads:
        await asyncio.gather(*(store.apply(StatusEvent(
            id=mid, direction="inbound", state=State.DELIVERED, channel=channel))
            for mid in ids for channel in ("mobileapp", "email")))
    assert reads == []
    for mid in ids:
        record = await store.get(mid)
        assert record is not None and sorted(record.channels) == ["email", "mobileapp"]
        assert len(record.history) == 2
    assert store._turns == {}  # no lock outlives its folds


async def test_a_fold_onto_the_record_as_known_is_written_only_while_it_is_so(
        start_gateway: StartGateway) -> None:
    # `apply_unchanged` acts on what this process knows of the record: it writes only
    # when the compare-and-set proves nobody wrote it since, and enters the state index
    # only then.
    one = (await start_gateway()).runtime.status
    two = (await start_gateway()).runtime.status
    one.linger = 0.1  # `sending` is entered once it has lingered (test_sending_index.py)

    async def indexed(store: StatusStore, state: State) -> list[str]:
        assert store.states is not None
        return [key for key, _, _ in (await store.states.page(state)).entries]

    async def fold(store: StatusStore, event: StatusEvent) -> bool:
        indexing = await store.apply_unchanged(event, lambda record: True)
        if indexing is None:
            return False
        await wait_all(indexing)
        return True

    new, queued, moved, refused = new_id(), new_id(), new_id(), new_id()
    # Nothing known: a new record.
    assert await fold(one, event(new, State.SENDING))
    # Known as written here: the fold moves it on, in the index too.
    for mid in (queued, moved, refused):
        await one.apply(event(mid, State.QUEUED))
    assert await fold(one, event(queued, State.SENDING, seconds=1))
    # Written by another instance since (here: what `one` knows is older), or refused by
    # `expect`: nothing written.
    await two.apply(event(moved, State.ACCEPTED, seconds=2, provider_message_id="CS-1"))
    assert not await fold(one, event(moved, State.SENDING, seconds=1))
    assert await one.apply_unchanged(event(refused, State.SENDING, seconds=1),
                                     lambda record: False) is None
    # And a record this process does not know is not created over the one stored.
    assert not await fold(two, event(queued, State.RETRYING, seconds=3))
    for mid, states in ((new, [State.SENDING]), (queued, [State.QUEUED, State.SENDING]),
                        (moved, [State.QUEUED, State.ACCEPTED]),
                        (refused, [State.QUEUED])):
        record = await one.get(mid)
        assert record is not None and [h.state for h in record.history] == states, mid
    await wait_until(lambda: not one._lingering, message="the sweep")
    assert sorted(await indexed(one, State.SENDING)) == sorted([new, queued])
    assert await indexed(one, State.QUEUED) == [refused]
