"""A status read folds the message's own events onto its record: an event whose fold was
lost (its producer died between the two) still shows, each event counted once."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta

from aiohttp import ClientSession

from pbxsms.core.model.events import State, StatusEvent, new_id, utcnow
from pbxsms.core.stores.status import StatusRecord, apply, fold_onto
from tests.support.gateway import Gateway, StartGateway

TOKEN = "t0ken"
TENANTS = '{"pbx.example.com": "tok-pbx", "other.example.com": "tok-other"}'


def event(mid: str, state: State, seconds: float = 0, channel: str = "clicksend",
          **kw: object) -> StatusEvent:
    return StatusEvent(id=mid, direction="outbound", state=state, channel=channel,
                       at=utcnow() + timedelta(seconds=seconds), **kw)


def folded(events: list[StatusEvent], max_history: int = 200) -> StatusRecord | None:
    record = None
    for one in events:
        record = apply(record, one, max_history)
    return record


def same(one: StatusRecord | None, two: StatusRecord | None) -> None:
    assert one is not None and two is not None
    fields = {"state", "summary", "channels", "history", "history_dropped",
              "provider_message_id"}
    assert one.model_dump(include=fields) == two.model_dump(include=fields)


async def publish_unfolded(gateway: Gateway, one: StatusEvent) -> None:
    """Publish `one` as `publish_status` does, without its fold: as if its producer died
    between the two."""
    one.key = f"status:{one.id}:{one.channel or '-'}:{one.state}:{one.attempt or 0}"
    await gateway.runtime.publish(f"sms.status.{one.id}", one, one.key)


async def test_a_status_event_whose_fold_was_lost_shows_through_the_api(
        start_gateway: StartGateway) -> None:
    gateway = await start_gateway(env={"PBXSMS_API_TOKEN": TOKEN,
                                       "PBXSMS_TENANT_TOKENS": TENANTS})
    mid = new_id()
    for n, state in enumerate((State.QUEUED, State.SENDING, State.ACCEPTED)):
        await publish_unfolded(gateway, event(
            mid, state, n, domain="pbx.example.com",
            provider_message_id="CS-7" if state == State.ACCEPTED else None))
    assert await gateway.runtime.status.messages.get(mid) == (None, 0)  # never folded
    url = f"{gateway.url}/api/v1/messages"
    async with ClientSession() as http:
        for token in (TOKEN, "tok-pbx"):
            async with http.get(f"{url}/{mid}",
                                headers={"Authorization": f"Bearer {token}"}) as answer:
                assert answer.status == 200
                record = await answer.json()
            assert (record["state"], record["provider_message_id"]) == ("accepted", "CS-7")
            assert [h["state"] for h in record["history"]] == ["queued", "sending", "accepted"]
            assert record["history_dropped"] == 0
        # Tenancy as before: another tenant's token, and an unknown id, find nothing.
        for token, asked in (("tok-other", mid), (TOKEN, new_id())):
            async with http.get(f"{url}/{asked}",
                                headers={"Authorization": f"Bearer {token}"}) as answer:
                assert answer.status == 404


async def test_a_read_folds_the_events_the_record_lacks_onto_it(
        start_gateway: StartGateway) -> None:
    gateway = await start_gateway()
    store = gateway.runtime.status
    mid = new_id()
    earlier = [event(mid, State.QUEUED), event(mid, State.SENDING, 1)]
    for one in earlier:
        await gateway.runtime.publish_status(one)  # published and folded
    later = event(mid, State.DELIVERED, 3, provider_message_id="CS-8")
    await publish_unfolded(gateway, later)
    stored = await store.messages.get(mid)
    assert stored[0] is not None and StatusRecord.model_validate_json(
        stored[0]).state == State.SENDING
    same(await store.get(mid), folded([*earlier, later]))


async def publish_flood(gateway: Gateway, mid: str, count: int) -> list[StatusEvent]:
    """`count` receipts with new details each (e.g. forged): each a new event and entry."""
    receipts = [event(mid, State.SENT, n, reason=f"receipt {n}") for n in range(count)]
    for n, one in enumerate(receipts):
        await gateway.runtime.publish(f"sms.status.{mid}", one, f"flood:{mid}:{n}")
    return receipts


async def test_a_flooded_message_is_read_from_its_record_and_its_newest_event(
        start_gateway: StartGateway) -> None:
    gateway = await start_gateway(toml="[bus]\nstatus_history = 10\n")
    store = gateway.runtime.status
    store.read_events = 12  # a read takes the first 12 events, then the newest one
    mid = new_id()
    receipts = await publish_flood(gateway, mid, 16)
    for one in receipts:
        await store.apply(one)  # folded here, each once
    newest = event(mid, State.DELIVERED, 20)
    await publish_unfolded(gateway, newest)
    # The first twelve are folded already (six of them dropped from the history): counted
    # once; the newest is folded on.
    same(await store.get(mid), folded([*receipts, newest], 10))

    # Not folded at all: the first twelve and the newest, the rest counted as dropped.
    unfolded = new_id()
    receipts = await publish_flood(gateway, unfolded, 16)
    record = await store.get(unfolded)
    whole = folded(receipts, 10)
    assert record is not None and whole is not None
    assert (record.state, record.history_dropped) == (whole.state, whole.history_dropped)
    assert (record.history[0], record.history[-1]) == (whole.history[0], whole.history[-1])


def test_a_channel_shows_the_state_that_stands_whatever_order_its_events_come_in() -> None:
    """Folded in every order, a channel's events give the same state: a final one over
    the others (the first final: a late receipt never undoes it), then the newest;
    `queued` only when nothing else came; the order of `State` when two came at the same
    instant."""
    mid, at = new_id(), utcnow()

    def at_(seconds: float, state: State) -> StatusEvent:
        return StatusEvent(id=mid, direction="outbound", state=state, channel="clicksend",
                           at=at + timedelta(seconds=seconds))

    cases = [
        ([at_(1, State.FAILED), at_(2, State.DELIVERED), at_(3, State.RETRYING)],
         State.FAILED),
        ([at_(1, State.DELIVERED), at_(2, State.FAILED)], State.DELIVERED),
        ([at_(1, State.SENT), at_(2, State.DELIVERED), at_(3, State.FAILED)],
         State.DELIVERED),
        ([at_(1, State.SENDING), at_(2, State.QUEUED)], State.SENDING),
        ([at_(1, State.ACCEPTED), at_(1, State.SENDING)], State.ACCEPTED),
        ([at_(1, State.SENDING), at_(2, State.ACCEPTED), at_(3, State.RETRYING)],
         State.RETRYING),
    ]
    for events, stands in cases:
        for order in itertools.permutations(events):
            record = folded(list(order))
            assert record is not None
            assert record.channels["clicksend"].state == stands, [e.state for e in order]
            assert record.state == stands


def test_folding_onto_a_record_counts_each_event_once() -> None:
    """Whatever the folded record already holds (and in whatever order the events come),
    the read shows what folding every event would: with a history cap, the record holds
    the oldest events (folds fall behind the newest)."""
    rng = random.Random(19)
    states = [State.QUEUED, State.SENDING, State.ACCEPTED, State.SENT, State.RETRYING,
              State.DELIVERED, State.FAILED]
    for _ in range(300):
        mid = new_id()
        seconds = rng.sample(range(100), rng.randint(2, 12))
        # Any states, several finals of one channel among them: `apply` is
        # order-insensitive (a final state over the others, the first of them).
        events = [event(mid, rng.choice(states), at, channel=rng.choice(["clicksend", "x"]),
                        reason=rng.choice([None, "r"]))
                  for at in seconds]
        capped = rng.random() < 0.5
        cap = rng.randint(2, 5) if capped else 200
        if capped:  # the oldest ones were folded
            done = sorted(events, key=lambda e: e.at)[:rng.randint(0, len(events))]
        else:
            done = rng.sample(events, rng.randint(0, len(events)))
        stored = folded(rng.sample(done, len(done)), cap)
        read = fold_onto(stored, rng.sample(events, len(events)), max_history=cap)
        same(read, folded(events, cap))
