"""The `sending` state index: a message enters it only once it has been in `sending` for the
store's `linger` (most are accepted a few ms after it, and then neither the entry nor its
erasure is written), with the time it got there, and leaves it when it moves on."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from aiohttp import ClientSession

from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.core.model.events import State, StatusEvent, new_id, utcnow
from pbxsms.core.stores.states import LINGER, bucket_name
from pbxsms.core.stores.status import StatusRecord, StatusStore
from tests.helpers import wait_until
from tests.support.counting import Requests
from tests.support.gateway import StartGateway

SENDING = bucket_name(State.SENDING)
# Long enough that nothing lingers this long in a test unless it is made to.
NEVER = 600.0
# Short enough that a test waits little for what lingers.
SHORT = 0.3


def event(mid: str, state: State, seconds: float = 0, **kw: object) -> StatusEvent:
    return StatusEvent(id=mid, direction="outbound", state=state, channel="clicksend",
                       at=utcnow() + timedelta(seconds=seconds), **kw)


async def entries(store: StatusStore) -> list[tuple[str, bytes]]:
    """The `sending` index as stored (stale entries too): (message id, value)."""
    assert store.states is not None
    return [(key, value) for key, _, value in (await store.states.page(State.SENDING)).entries]


async def listed(store: StatusStore) -> list[str]:
    return [record.id for record in (await store.in_state(State.SENDING)).records]


async def has(store: StatusStore, mid: str) -> bool:
    return mid in await listed(store)


async def stored(store: StatusStore, mid: str) -> StatusRecord:
    value, _ = await store.messages.get(mid)
    assert value is not None
    return StatusRecord.model_validate_json(value)


def touching_sending(seen: list[tuple[str, bytes]]) -> list[str]:
    """The writes of the `sending` index among what the server took: entries and purges."""
    return [subject for subject, _ in seen
            if subject.startswith(f"$KV.{SENDING}.")
            or subject == f"$JS.API.STREAM.PURGE.KV_{SENDING}"]


async def test_a_send_accepted_quickly_never_enters_the_sending_index(
        start_gateway: StartGateway, nats_server: EmbeddedNats) -> None:
    assert LINGER == 2.0  # the documented figure (docs/sending.md)
    gateway = await start_gateway()
    runtime, store = gateway.runtime, gateway.runtime.status
    store.linger = NEVER
    mids = [new_id() for _ in range(3)]
    async with Requests(nats_server.url) as spy:
        for mid in mids:
            await runtime.publish_status(event(mid, State.QUEUED))
            await runtime.publish_status(event(mid, State.SENDING, 0.1, attempt=1))
            await runtime.publish_status(event(mid, State.ACCEPTED, 0.2, attempt=1,
                                               provider_message_id=f"CS-{mid}"))
        seen = await spy.until_now()
    # Neither the entry nor its erasure was written; the states around it were.
    assert touching_sending(seen) == []
    assert [s for s, _ in seen if s.startswith(f"$KV.{bucket_name(State.ACCEPTED)}.")] == [
        f"$KV.{bucket_name(State.ACCEPTED)}.{mid}" for mid in mids]
    assert store._lingering == {}
    assert [r.id for r in (await store.in_state(State.ACCEPTED)).records] == mids


async def test_a_send_still_sending_after_linger_is_listed_with_its_time_then_leaves(
        start_gateway: StartGateway) -> None:
    gateway = await start_gateway()
    runtime, store = gateway.runtime, gateway.runtime.status
    store.linger = SHORT
    mid = new_id()
    await runtime.publish_status(event(mid, State.QUEUED))
    began = time.monotonic()
    await runtime.publish_status(event(mid, State.SENDING, 0.1, attempt=1))
    got_there = (await stored(store, mid)).updated_at.isoformat().encode()
    await wait_until(lambda: has(store, mid), message="the lingering send listed")
    assert time.monotonic() - began >= SHORT, "entered before it lingered"
    # Its time is when it got there, not when the sweep wrote it.
    assert await entries(store) == [(mid, got_there)]
    # Accepted: it leaves the index (the erasure is written, since the entry was).
    await runtime.publish_status(event(mid, State.ACCEPTED, 0.2, attempt=1,
                                       provider_message_id="CS-1"))
    assert await entries(store) == []
    assert await listed(store) == []


async def test_lingering_sends_are_listed_in_the_order_they_got_there(
        start_gateway: StartGateway) -> None:
    store = (await start_gateway()).runtime.status
    store.linger = SHORT
    first = [new_id() for _ in range(3)]
    for mid in first:
        await store.apply(event(mid, State.SENDING))
    # Later ones, entered by a later sweep than the first ones (or the same one).
    await wait_until(lambda: has(store, first[0]), message="the first ones listed")
    later = [new_id() for _ in range(3)]
    for mid in later:
        await store.apply(event(mid, State.SENDING))
    await wait_until(lambda: has(store, later[-1]), message="the later ones listed")
    assert await listed(store) == first + later
    times = [value for _, value in await entries(store)]
    assert times == sorted(times)
    # Pages continue in that order.
    assert store.states is not None
    page = await store.in_state(State.SENDING, limit=4)
    rest = await store.in_state(State.SENDING, limit=4, after=page.next_after or 0)
    assert [r.id for r in page.records + rest.records] == first + later


async def test_a_send_that_moved_on_meanwhile_is_not_entered(
        start_gateway: StartGateway) -> None:
    # Another instance moves it on (its fold here would drop it): the sweep reads the
    # record again and finds it is not in `sending` any more.
    one = (await start_gateway()).runtime.status
    two = (await start_gateway()).runtime.status
    one.linger = 1.0  # two's fold comes well before it
    moved, lingering = new_id(), new_id()
    await one.apply(event(moved, State.SENDING))
    await one.apply(event(lingering, State.SENDING))
    await two.apply(event(moved, State.ACCEPTED, 1, provider_message_id="CS-2"))
    await wait_until(lambda: not one._lingering, message="the sweep")
    assert [key for key, _ in await entries(one)] == [lingering]
    assert await listed(one) == [lingering]


async def test_a_repeated_sending_repairs_at_once_and_a_redelivery_enters_it(
        start_gateway: StartGateway) -> None:
    one = (await start_gateway()).runtime.status
    two = (await start_gateway()).runtime.status
    one.linger, two.linger = NEVER, SHORT
    assert one.states is not None
    # A repair (a repeat of the event, e.g. the retired consumer's backlog) writes at once.
    mid = new_id()
    sending = event(mid, State.SENDING, attempt=1)
    await one.apply(sending)
    assert await entries(one) == []
    await one.apply(sending, repair=True)
    assert [key for key, _ in await entries(one)] == [mid]
    assert mid not in one._lingering
    # Another attempt while in `sending`: an entry may be stored that this process did
    # not write (the earlier attempt's), so moving on erases it even if none was.
    again = new_id()
    await one.apply(event(again, State.SENDING, attempt=1))
    await one.apply(event(again, State.SENDING, 1, attempt=2), repair=False)  # as published
    assert one._lingering[again].stored
    await one.states.enter(State.SENDING, again, b"as the earlier attempt wrote it")
    await one.apply(event(again, State.ACCEPTED, 2, provider_message_id="CS-3"))
    assert again not in [key for key, _ in await entries(one)]
    # A process dies with a send in `sending` not entered; the request's redelivery on
    # another instance (which reads the record first, as the dispatcher does) enters it
    # once it has lingered there.
    crashed = new_id()
    await one.apply(event(crashed, State.SENDING, attempt=1))
    await one.close()
    assert await two.get(crashed) is not None
    began = time.monotonic()
    await two.apply(event(crashed, State.SENDING, 1, attempt=2), repair=False)
    await wait_until(lambda: has(two, crashed), message="the redelivered send listed")
    assert time.monotonic() - began >= SHORT


async def test_close_stops_the_sweep_and_nothing_is_left_running(
        start_gateway: StartGateway) -> None:
    gateway = await start_gateway()
    store = gateway.runtime.status
    store.linger = NEVER
    await store.apply(event(new_id(), State.SENDING))
    sweeper = store._sweeper
    assert sweeper is not None and not sweeper.done()
    # The gateway's stop closes the store (`Runtime.close`).
    await gateway.server.stop()
    assert sweeper.done() and store._sweeper is None
    assert not [task for task in asyncio.all_tasks() if not task.done()
                and task.get_name() == "status-sending-sweep"]
    # A closed store starts no sweep again.
    other = (await start_gateway()).runtime.status
    await other.close()
    await other.apply(event(new_id(), State.SENDING))
    assert other._sweeper is None


async def test_the_api_lists_a_lingering_send(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(env={"PBXSMS_API_TOKEN": "t0ken"})
    runtime = gateway.runtime
    runtime.status.linger = SHORT
    quick, lingering = new_id(), new_id()
    for mid in (lingering, quick):
        await runtime.publish_status(event(mid, State.SENDING, attempt=1))
    await runtime.publish_status(event(quick, State.ACCEPTED, 1, provider_message_id="CS-4"))
    async with ClientSession(headers={"Authorization": "Bearer t0ken"}) as http:
        async def shown() -> list[str]:
            async with http.get(f"{gateway.url}/api/v1/messages?status=sending") as response:
                assert response.status == 200
                return [m["id"] for m in (await response.json())["messages"]]

        async def lists_it() -> bool:
            return await shown() == [lingering]

        await wait_until(lists_it, message="?status=sending listing the lingering send")
