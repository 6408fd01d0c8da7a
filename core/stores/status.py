"""Message status: a projection of `sms.status.>` into a KV bucket, so any instance answers.

Status events are the source of truth; this store folds them into one record per message
(current state, per-channel state, history). The producer of each event folds it as it
publishes it (`Runtime.publish_status`), so no consumer reads the events back. A read
(`get`) folds the message's own events (`sms.status.<id>`) onto that record, so an event
whose fold was lost (a crash between the two) still shows. The record also holds the
delivery channels' once-only ledger (`settled`, core/inbound/ledger.py), written with the
channel's status event in one compare-and-set. The store indexes provider ids (e.g. ClickSend's
`message_id`) back to ours for delivery receipts, and indexes messages by current state
(core/stores/states.py: an entry per message, erased when it moves on) so that e.g. the
unroutable messages can be listed page by page in the order they got there, however many
are stored; a message enters `sending` there only once it has been in it for `LINGER`
(the store remembers it until then and a sweep enters it). A channel in a final state is
never moved back by a late or repeated event, and no channel by an event older than its
current state (events are folded concurrently); the event still appears in the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple, TypeVar

from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError
from pydantic import BaseModel, Field

from pbxsms.bus import kv as kvs
from pbxsms.bus.kv import Bucket
from pbxsms.bus.stream import SubjectReader
from pbxsms.core.model.events import SenderType, State, StatusEvent, utcnow
from pbxsms.core.stores.states import LINGER, StateIndex

log = logging.getLogger("pbxsms.status")

MESSAGES_BUCKET = "sms_messages"
PROVIDER_IDS_BUCKET = "sms_provider_ids"
# The durable consumer that folded status events before their producers did.
RETIRED_CONSUMER = "status-store"

# Status history entries kept per message unless `[bus] status_history` says otherwise.
MAX_HISTORY = 200

# Status events of one message a read folds at most: a message has a few (a handful per
# channel and attempt); beyond this it was flooded (e.g. forged receipts), and a read
# takes the folded record and the newest event only.
READ_EVENTS = 256

# How many records (and provider ids) this process remembers having written: enough
# for the events of one message, which come close together, at thousands per second.
REMEMBERED = 4096

T = TypeVar("T")


class ChannelStatus(BaseModel):
    state: State
    attempt: int | None = None
    reason: str | None = None
    at: datetime


class Settled(BaseModel):
    """What the delivery ledger keeps about one settled delivery (core/inbound/ledger.py)."""

    state: Literal["delivered", "failed"]
    attempt: int
    at: datetime = Field(default_factory=utcnow)
    provider_message_id: str | None = None
    reason: str | None = None


class HistoryEntry(BaseModel):
    state: State
    channel: str | None = None
    reason: str | None = None
    attempt: int | None = None
    provider_message_id: str | None = None
    error_code: str | None = None
    at: datetime
    # The event's `key`: a repeat of the same change (a retried publish) is this entry.
    key: str | None = None


# Kept in the record, not shown by the API.
PRIVATE: Any = {"settled": True, "history": {"__all__": {"key"}}}


class StatusRecord(BaseModel):
    """What `GET /api/v1/messages/{id}` returns."""

    id: str
    direction: str
    state: State
    summary: str = ""
    provider_message_id: str | None = None
    segments: int | None = None
    sender_type: SenderType | None = Field(
        None, description="Inbound: what the sender is (e164, short_code, alphanumeric)")
    domain: str | None = Field(None, description="Tenant (PBX domain) of our number")
    channels: dict[str, ChannelStatus] = Field(default_factory=dict)
    history: list[HistoryEntry] = Field(default_factory=list)
    # Entries dropped from `history` beyond the cap (the first one is always kept).
    history_dropped: int = 0
    updated_at: datetime = Field(default_factory=utcnow)
    stream_seq: int | None = Field(None, description="Where the message's event is stored")
    redeliveries: int = 0
    redelivered_at: datetime | None = None
    # The delivery ledger: settled deliveries by `ledger_key` (core/inbound/ledger.py).
    settled: dict[str, Settled] = Field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """The record as the API shows it (JSON types), without the ledger."""
        return self.model_dump(mode="json", exclude=PRIVATE)


class _Ledger(BaseModel):
    """A record read for its ledger alone: the rest (history, channels) is not built."""

    settled: dict[str, Settled] = Field(default_factory=dict)


class _Current(BaseModel):
    """A record read for its state alone (the sweep of lingering `sending` entries)."""

    state: State


class _Lingering(NamedTuple):
    """A `sending` entry not written yet (see `StatusStore._linger`)."""

    since: float  # when the record entered `sending` (time.monotonic)
    value: bytes  # the entry's value: the time of that fold, as an entry written then
    # An entry may be stored already (an earlier attempt's, or another process's): the
    # record's leaving `sending` erases it even if this one was never written.
    stored: bool


def apply(record: StatusRecord | None, event: StatusEvent,
          max_history: int = MAX_HISTORY) -> StatusRecord:
    """Fold one status event into the record (pure; safe to repeat). The history keeps
    its first entry and the newest, `max_history` in all; `history_dropped` counts the
    rest."""
    entry = _entry(event)
    if record is None:
        record = StatusRecord(id=event.id, direction=event.direction, state=event.state)
    elif folded_in(entry, record.history):
        return record
    record.history.append(entry)
    record.history.sort(key=lambda item: item.at)
    excess = len(record.history) - max_history
    if excess > 0:
        del record.history[1:1 + excess]
        record.history_dropped += excess
    record.stream_seq = record.stream_seq or event.stream_seq
    if event.redelivery is not None:
        _start_over(record, event)
    elif record.redelivered_at is None or event.at >= record.redelivered_at:
        _fold_channel(record, event)
    if event.direction == "outbound":
        # An inbound message's provider id is the carrier's, from its event; the ids
        # its delivery channels report stay in the history.
        record.provider_message_id = event.provider_message_id or record.provider_message_id
    record.segments = event.segments or record.segments
    record.sender_type = event.sender_type or record.sender_type
    record.domain = event.domain or record.domain
    record.state = overall_state(record)
    record.summary = ", ".join(_describe(name, status)
                               for name, status in sorted(record.channels.items()))
    record.updated_at = utcnow()
    return record


def _entry(event: StatusEvent) -> HistoryEntry:
    return HistoryEntry(state=event.state, channel=event.channel, reason=event.reason,
                        attempt=event.attempt, provider_message_id=event.provider_message_id,
                        error_code=event.error_code, at=event.at, key=event.key)


def folded_in(entry: HistoryEntry, history: list[HistoryEntry]) -> bool:
    """Whether `history` has `entry`: the same key, or (events without one, from older
    versions) the same entry. A producer folds the event it built, which a repeat of a
    publish builds anew (another `at`); the stream keeps the first of them."""
    if entry.key is not None:
        return any(kept.key == entry.key for kept in history)
    return entry in history


def unfolded(stored: StatusRecord | None, events: list[StatusEvent]) -> list[StatusEvent]:
    """Those of `events` that `stored` has not folded (see `fold_onto`)."""
    folded = stored.history if stored is not None else []
    newest = folded[-1].at if stored is not None and stored.history_dropped and folded else None
    return [event for event in events
            if not (folded_in(_entry(event), folded)
                    or (newest is not None and event.at <= newest))]


def fold_onto(stored: StatusRecord | None, events: list[StatusEvent], unread: int = 0,
              max_history: int = MAX_HISTORY) -> StatusRecord | None:
    """`stored` (the folded record, if any) with those of `events` it has not folded yet
    folded onto it: what a fresh read shows. `unread`: events of the message not in
    `events` nor known to be in `stored`, counted in `history_dropped`.

    An event whose entry is in `stored`'s history was folded. One that is not was not
    either, unless `stored` dropped entries (`history_dropped`): a dropped entry is older
    than every entry kept but the first, so then only events newer than the newest entry
    are folded, and a folded event is never counted twice."""
    stored_at = stored.updated_at if stored is not None else None
    record, changed_at = stored, None
    for event in unfolded(stored, events):
        record = apply(record, event, max_history)
        changed_at = max(changed_at or event.at, event.at)
    if record is not None and changed_at is not None:
        # When its status last changed: the record was not written by this read.
        record.updated_at = max(changed_at, stored_at) if stored_at else changed_at
        record.history_dropped += unread
    return record


def _fold_channel(record: StatusRecord, event: StatusEvent) -> None:
    channel = event.channel or "-"
    current = record.channels.get(channel)
    if current is None or _standing(event.state, event.at) > _standing(current.state,
                                                                      current.at):
        record.channels[channel] = ChannelStatus(state=event.state, attempt=event.attempt,
                                                 reason=event.reason, at=event.at)


_ORDER = {state: n for n, state in enumerate(State)}


def _standing(state: State, at: datetime) -> tuple[int, float, int]:
    """Which of two states of one channel stands: events are folded concurrently and by
    several processes, so in any order, and the greater of the two must win whichever
    came first. A final state over any other, the first of them (a final state is never
    undone: a late receipt stays in the history only); then any state over `queued` (a
    channel's first state, published by another process); then the newest. The order of
    `State` breaks a tie of the same instant."""
    if state.final:
        return 2, -at.timestamp(), _ORDER[state]
    return int(state != State.QUEUED), at.timestamp(), _ORDER[state]


REACHED = frozenset({State.DELIVERED, State.SENT, State.ACCEPTED})


def _start_over(record: StatusRecord, event: StatusEvent) -> None:
    """An operator's redelivery: the channels start over from `queued` (the newest
    redelivery wins; channel states reported after it, folded first, are kept)."""
    if (event.redelivery or 0) <= record.redeliveries:
        return
    record.redeliveries = event.redelivery or 0
    record.redelivered_at = event.at
    # A channel that reached its person keeps its state (the ledger keeps it from
    # reaching them again); the others try again.
    record.channels = {name: status for name, status in record.channels.items()
                       if status.at >= event.at or status.state in REACHED}
    if not record.channels:
        record.state = State.QUEUED


def overall_state(record: StatusRecord) -> State:
    """One word for the whole message: the most recent channel state, finals first."""
    states = list(record.channels.values())
    if not states:
        return record.state  # redelivered, no channel has reported yet
    if any(s.state == State.UNROUTABLE for s in states):
        return State.UNROUTABLE  # no channel can deliver it, whatever else was reported
    if len(states) == 1:
        return states[0].state
    pending = [s for s in states if not s.state.final]
    latest = max(pending or states, key=lambda s: s.at)
    return latest.state


def _describe(name: str, status: ChannelStatus) -> str:
    text = f"{name}: {status.state.value}"
    if status.state == State.RETRYING and status.attempt:
        text += f" ({status.attempt})"
    return text


@dataclass(frozen=True)
class StatePage:
    """One page of the messages in a state; `next_after` continues it (None: the end)."""

    records: list[StatusRecord]
    next_after: int | None


class StatusStore:
    """Read and fold message status records."""

    def __init__(self, messages: Bucket, provider_ids: Bucket,
                 states: StateIndex | None = None, max_history: int = MAX_HISTORY,
                 events: SubjectReader | None = None) -> None:
        self.messages = messages
        # The stream's `sms.status.<id>`, read by `get` (None: the folded record only),
        # up to `read_events` of a message.
        self.events = events
        self.read_events = READ_EVENTS
        self.max_history = max_history
        self.provider_ids = provider_ids
        self.states = states
        # What this process last wrote or read per record (value, revision): the next
        # write of the same record starts from it instead of reading it back. A write by
        # another instance makes the compare-and-set fail, and the record is read.
        self._known: OrderedDict[str, tuple[bytes, int]] = OrderedDict()
        # Provider ids this process stored, so a fold does not store them again.
        self._remembered: OrderedDict[str, str] = OrderedDict()
        # The writes of one record in this process take turns (see `apply`): the lock
        # of each record being written, and how many writes hold or wait for it.
        self._turns: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        # The ledger read of each record in flight (`settled`), shared by the callers
        # that come while it is.
        self._reading: dict[str, asyncio.Future[tuple[bytes | None, int]]] = {}
        # Records this process moved into `sending` whose entry is not written yet, oldest
        # first: entered by the sweep once they have been there `linger` seconds, dropped
        # when they leave it sooner (see `_index`).
        self.linger = LINGER
        self._lingering: dict[str, _Lingering] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    async def get(self, message_id: str) -> StatusRecord | None:
        """The message's status now: its record with its events on `sms.status.<id>`
        that the record lacks (a fold lost in a crash, or not written yet), or None when
        neither exists. One round trip: the record and the events are asked for
        together."""
        if not _valid_key(message_id):
            return None
        if self.events is None:
            value, revision = await self.messages.get(message_id)
            if value is not None:
                self._learn(message_id, value, revision)
            return _shown(StatusRecord.model_validate_json(value) if value else None)
        stored, events, unread = await self._record_and_events(message_id)
        return _shown(fold_onto(stored, events, unread, self.max_history))

    async def catch_up(self, message_id: str) -> StatusRecord | None:
        """`get`, with the events the record lacks folded into it and written (its
        state index and provider id too): for a process that finds an event whose
        producer died before folding it, e.g. an `accepted` on a redelivery, which
        would otherwise stay out of `in_state` and receipt matching."""
        if self.events is None or not _valid_key(message_id):
            return await self.get(message_id)
        stored, events, _ = await self._record_and_events(message_id)
        record = stored
        for event in unfolded(stored, events):
            record = await self.apply(event, repair=True)
        return _shown(record)

    async def _record_and_events(self, message_id: str
                    ) -> tuple[StatusRecord | None, list[StatusEvent], int]:
        """The record as stored, its events on `sms.status.<id>` (the first
        `read_events`, and the newest when there are more) and how many were not read
        nor are known to be in the record. One round trip: both are asked together."""
        assert self.events is not None
        subject = f"sms.status.{message_id}"
        reading = await self.events.first(subject, self.read_events)
        value, revision = await self.messages.get(message_id)
        read = await reading
        if value is not None:  # the next write of the record starts from it
            self._learn(message_id, value, revision)
        stored = StatusRecord.model_validate_json(value) if value else None
        found = read.messages
        if read.more:  # flooded: the first ones are in the folded record; the newest
            found = [*found, *(await (await self.events.last(subject))).messages]
        events = []
        for _, data in found:
            try:
                event = StatusEvent.model_validate_json(data)
            except ValueError:
                continue  # not a status event (no producer of ours wrote it): never folded
            if event.id == message_id:
                events.append(event)
        # The unread (flooded) events are counted by the folded record, if there is one.
        unread = max(0, read.more - 1) if stored is None else 0
        return stored, events, unread

    async def settled(self, message_id: str) -> dict[str, Settled]:
        """The delivery ledger of a message (its record, read from the stream's leader).

        The channels of one process read a new message's record at the same moment: one
        read in flight per record serves every caller that comes meanwhile. That is as
        fresh as a read of its own for each of them: the shared read was asked after
        this process's last write of the record returned (a write makes later callers
        ask anew, `_write`), and what a caller looks for is its own channel's entries,
        which only that channel's delivery of the message writes. The revision read is
        remembered, so the channel's compare-and-set afterwards needs no read."""
        if not _valid_key(message_id):
            return {}
        reading = self._reading.get(message_id)
        if reading is None:
            reading = asyncio.ensure_future(self.messages.get(message_id))
            self._reading[message_id] = reading
            reading.add_done_callback(lambda done: self._read(message_id, done))
        value, revision = await asyncio.shield(reading)
        if value is None:
            return {}
        self._learn(message_id, value, revision)
        return _Ledger.model_validate_json(value).settled

    def _read(self, message_id: str, done: asyncio.Future[tuple[bytes | None, int]]) -> None:
        if self._reading.get(message_id) is done:
            del self._reading[message_id]
        if not done.cancelled():
            done.exception()  # retrieved: every caller gets it from `shield`

    def _learn(self, message_id: str, value: bytes, revision: int) -> None:
        if revision > self._known.get(message_id, (b"", 0))[1]:
            _keep(self._known, message_id, (value, revision))

    async def find_by_provider_id(self, provider: str, provider_message_id: str) -> str | None:
        """Our id for a provider's message id, once its acceptance was recorded."""
        key = f"{provider}.{provider_message_id}"
        if not _valid_key(key):
            return None
        value, _ = await self.provider_ids.get(key)
        return value.decode() if value else None

    async def remember_provider_id(self, provider: str, provider_message_id: str,
                                   message_id: str) -> None:
        key = f"{provider}.{provider_message_id}"
        if not _valid_key(key) or self._stored(provider, provider_message_id, message_id):
            return
        # Counted as stored while the write is in flight, so that the fold of the same
        # event, at the same moment, does not write it too; forgotten if it fails.
        _keep(self._remembered, key, message_id)
        try:
            await self.provider_ids.put(key, message_id.encode())
        except BaseException:
            self._forget_provider_id(provider, provider_message_id, message_id)
            raise

    async def _send_provider_id(self, provider: str, provider_message_id: str,
                                message_id: str) -> list[asyncio.Future[Any]]:
        """`remember_provider_id` put in flight (nothing when it is no usable key); the
        caller forgets it (`_forget_provider_id`) if the write fails."""
        key = f"{provider}.{provider_message_id}"
        if not _valid_key(key):
            return []
        _keep(self._remembered, key, message_id)
        try:
            return [await self.provider_ids.send_put(key, message_id.encode())]
        except BaseException:
            self._forget_provider_id(provider, provider_message_id, message_id)
            raise

    def _forget_provider_id(self, provider: str | None, provider_message_id: str | None,
                            message_id: str) -> None:
        key = f"{provider}.{provider_message_id}"
        if self._remembered.get(key) == message_id:
            del self._remembered[key]

    def _stored(self, provider: str, provider_message_id: str, message_id: str) -> bool:
        """Whether this process already stored this provider id for `message_id`."""
        return self._remembered.get(f"{provider}.{provider_message_id}") == message_id

    async def apply(self, event: StatusEvent, repair: bool = True,
                    settled: Mapping[str, Settled] | None = None) -> StatusRecord:
        """Fold `event` into its record (compare-and-set against concurrent writers), with
        the delivery ledger's `settled` entries in the same write.

        `repair` rewrites the state index even when the state did not change, for an
        event whose first fold may have died before its index write: a repeat of an
        event the record already has always repairs.

        The writes of one record in this process take turns, so the second starts from
        the record the first wrote instead of losing the compare-and-set to it and
        reading the record back (four NATS messages more). Other instances still race
        and lose to the compare-and-set, as before.
        """
        if not _valid_key(event.id):
            raise ValueError(f"not a usable message id: {event.id!r}")
        async with self._turn(event.id):
            return await self._fold(event, repair, settled or {})

    async def _fold(self, event: StatusEvent, repair: bool,
                    settled: Mapping[str, Settled]) -> StatusRecord:
        before: list[State] = []
        folded: list[StatusRecord] = []
        repeated = [False]
        calls = [0]

        def change(current: bytes | None) -> bytes:
            calls[0] += 1
            record = StatusRecord.model_validate_json(current) if current else None
            before[:] = [record.state] if record else []
            repeated[0] = record is not None and folded_in(_entry(event), record.history)
            # The last call's record is the one written: no need to read it back.
            folded[:] = [apply(record, event, self.max_history)]
            folded[0].settled.update(settled)
            return folded[0].model_dump_json().encode()

        async def index() -> list[asyncio.Future[Any]]:
            return await self._index(folded[0], before[0] if before else None,
                                     repair or repeated[0], event.state)

        # The writes beside the record's are put in flight first, then awaited with it:
        # one round trip for all, and no task for each. The provider id does not depend
        # on the record.
        in_flight: list[asyncio.Future[Any]] = []
        provider = event.channel, event.provider_message_id
        if event.provider_message_id and event.channel and not self._stored(
                event.channel, event.provider_message_id, event.id):
            in_flight += await self._send_provider_id(event.channel,
                                                      event.provider_message_id, event.id)
        # An inbound message's record starts with the status of its first channel, an
        # outbound one's with `queued` or `sending`: try creating it rather than reading
        # nothing first.
        known = self._guess(event.id, absent=(
            event.direction == "inbound" or event.state in (State.QUEUED, State.SENDING)))
        written = change
        if known is not None:
            # The record and its index as they will be if the guess holds.
            first: list[bytes] = [change(known[0])]

            def again(current: bytes | None) -> bytes:
                return first.pop() if first else change(current)

            written = again
            in_flight += await index()
        try:
            await self._write(event.id, written, known)
        finally:
            try:
                await kvs.wait_all(in_flight)
            except Exception:
                self._forget_provider_id(*provider, event.id)
                raise
        if known is not None and calls[0] == 1:
            return folded[0]
        if known is not None:
            # The guess was wrong: the index writes sent with it may have erased the
            # entry of the state the record is really in; they are done, so writing it
            # now wins.
            repair = True
        await kvs.wait_all(await index())
        return folded[0]

    async def apply_unchanged(self, event: StatusEvent,
                              expect: Callable[[StatusRecord | None], bool]
                              ) -> list[asyncio.Future[Any]] | None:
        """Fold `event` onto the record as this process last wrote or read it (knowing
        none: as a new record) if that record passes `expect` and nobody wrote it since;
        else None, with nothing written. The compare-and-set proves the record is still
        as known, so a caller can act on it without reading it back. Once the record is
        written, its state index writes are put in flight and returned, for the caller to
        await with its own (`kvs.wait_all`): nothing is entered for a fold that did not
        happen. For an event without a provider id (a message's first states)."""
        if not _valid_key(event.id) or event.provider_message_id:
            raise ValueError(f"not a first state of a usable message id: {event.id!r}")
        async with self._turn(event.id):
            known = self._guess(event.id, absent=True)
            assert known is not None  # absent=True: (None, 0) when nothing is known
            value, revision = known
            record = StatusRecord.model_validate_json(value) if value else None
            if not expect(record):
                return None
            before = record.state if record is not None else None
            folded = apply(record, event, self.max_history)
            new = folded.model_dump_json().encode()
            try:
                revision = await self.messages.update(event.id, new, last=revision)
            except KeyWrongLastSequenceError:
                return None
            finally:
                self._reading.pop(event.id, None)  # as in `_write`
            self._learn(event.id, new, revision)
            return await self._index(folded, before, False, event.state)

    async def settle(self, message_id: str, settled: Mapping[str, Settled]) -> None:
        """Store delivery ledger entries in the message's record without a status event
        (a delivery in several parts settles each as it goes). A record that has no
        status yet is created with the entries alone; `get` shows none until it has."""
        if not _valid_key(message_id):
            raise ValueError(f"not a usable message id: {message_id!r}")

        def change(current: bytes | None) -> bytes:
            record = (StatusRecord.model_validate_json(current) if current else
                      StatusRecord(id=message_id, direction="inbound", state=State.QUEUED))
            record.settled.update(settled)
            return record.model_dump_json().encode()

        async with self._turn(message_id):
            await self._write(message_id, change, self._guess(message_id, absent=True))

    async def forget(self, message_id: str) -> int:
        """Forget the message's settled deliveries (an operator's forced redelivery
        reaches everyone again); how many there were."""
        if not _valid_key(message_id):
            return 0
        forgotten = [0]

        def change(current: bytes | None) -> bytes | None:
            record = StatusRecord.model_validate_json(current) if current else None
            forgotten[0] = len(record.settled) if record else 0
            if record is None or not record.settled:
                return None
            record.settled = {}
            return record.model_dump_json().encode()

        async with self._turn(message_id):
            # Read first: what this process knows may lack another instance's entries,
            # and finding none writes nothing, so the compare-and-set would not tell.
            await self._write(message_id, change, None)
        return forgotten[0]

    def _turn(self, message_id: str) -> _Turn:
        return _Turn(self._turns, message_id)

    def _guess(self, message_id: str, absent: bool) -> tuple[bytes | None, int] | None:
        """The record as this process last wrote or read it; else, when `absent`, none
        (a new record). A wrong guess costs a failed compare-and-set and a read."""
        known = self._known.get(message_id)
        return (None, 0) if known is None and absent else known

    async def _write(self, message_id: str, change: Callable[[bytes | None], bytes | None],
                     known: tuple[bytes | None, int] | None) -> None:
        """Compare-and-set the record, starting from `known` if given (see `_guess`)."""
        try:
            value, revision = await kvs.modify(self.messages, message_id, change, known=known)
        finally:
            # A ledger read in flight may have been asked before this write: whoever
            # reads next asks anew.
            self._reading.pop(message_id, None)
        if value is not None:
            self._learn(message_id, value, revision)

    async def _index(self, record: StatusRecord, before: State | None, repair: bool,
                     said: State | None = None) -> list[asyncio.Future[Any]]:
        """The state index writes of a fold (`said`: the state its event said), put in
        flight. `sending` is entered later, by the sweep, if the record is still in it
        after `linger` (see `_linger`), and its erasure written only if it may be stored."""
        if self.states is None:
            return []
        state, moved = record.state, before != record.state
        writes: list[asyncio.Future[Any]] = []
        if state == State.SENDING and (moved or (said == State.SENDING and not repair)):
            # Into `sending`, or another attempt while in it (a redelivery after a crash
            # enters a message its first attempt did not).
            self._linger(record, stored=not moved)
        elif moved or repair:
            # An unchanged state needs no write, except to repair one lost to a crash;
            # `in_state` re-checks each record, so a stale entry is never shown.
            writes.append(await self.states.send_enter(
                state, record.id, record.updated_at.isoformat().encode()))
            if state == State.SENDING:
                self._lingering.pop(record.id, None)  # entered now
        if before is not None and moved:
            lingering = (self._lingering.pop(record.id, None) if before == State.SENDING
                         else None)
            if lingering is None or lingering.stored:
                writes.append(await self.states.send_leave(before, record.id))
        return writes

    def _linger(self, record: StatusRecord, stored: bool) -> None:
        """Remember that `record` is in `sending` with the entry it would have had now,
        for the sweep; a record already remembered keeps its time and place."""
        known = self._lingering.get(record.id)
        if known is None:
            self._lingering[record.id] = _Lingering(
                time.monotonic(), record.updated_at.isoformat().encode(), stored)
        elif stored and not known.stored:
            self._lingering[record.id] = known._replace(stored=True)
        if self._sweeper is None and not self._closed:
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep(), name="status-sending-sweep")

    async def _sweep(self) -> None:
        """Enter in `sending` the records still in it `linger` seconds after they
        entered it, oldest first, at most every quarter of `linger`; ends when none is
        left (`_linger` starts it again)."""
        try:
            while self._lingering:
                oldest = next(iter(self._lingering.values())).since
                await asyncio.sleep(max(oldest + self.linger - time.monotonic(),
                                        self.linger / 4))
                due = self._due()
                try:
                    await self._enter_lingering(due)
                except Exception as error:  # kept, tried again at the next sweep
                    log.warning("state index: %d messages in sending not entered yet (%s)",
                                len(due), error)
                    await asyncio.sleep(self.linger)
        finally:
            self._sweeper = None

    def _due(self) -> list[str]:
        """The lingering records whose `linger` is over, oldest first."""
        until = time.monotonic() - self.linger
        due = []
        for message_id, lingering in self._lingering.items():
            if lingering.since > until:
                break  # remembered in the order they entered `sending`
            due.append(message_id)
        return due

    async def _enter_lingering(self, due: list[str]) -> None:
        """Enter `due` in `sending` if their records are still in it, in order, each
        with the time it entered it. The records' turns are held meanwhile, so that no
        fold moves one on between its read and its entry (and skips the erasure)."""
        assert self.states is not None
        async with contextlib.AsyncExitStack() as turns:
            for message_id in due:
                await turns.enter_async_context(self._turn(message_id))
            # A fold that had its turn first may have moved one on (and dropped it).
            until = time.monotonic() - self.linger
            due = [message_id for message_id in due
                   if (lingering := self._lingering.get(message_id)) is not None
                   and lingering.since <= until]
            records = await self.messages.get_many(due)
            writes: list[asyncio.Future[Any]] = []
            for message_id in due:
                value, revision = records[message_id]
                if value is None:
                    continue
                self._learn(message_id, value, revision)
                if _Current.model_validate_json(value).state == State.SENDING:
                    writes.append(await self.states.send_enter(
                        State.SENDING, message_id, self._lingering[message_id].value))
            await kvs.wait_all(writes)
            for message_id in due:
                del self._lingering[message_id]

    async def close(self) -> None:
        """Stop the sweep (nothing of the store is left running). What it had not entered
        yet stays out of the index; the records are right, and a redelivery of the
        request enters them."""
        self._closed = True
        sweeper = self._sweeper
        if sweeper is not None:
            sweeper.cancel()
            await asyncio.wait([sweeper])

    async def in_state(self, state: State, limit: int = 100, after: int = 0,
                       since: datetime | None = None) -> StatePage:
        """A page of the messages now in `state`, in the order they reached it: from the
        index's revision `after + 1`, or from the first that reached it at or after
        `since`. One batched read of the state's own index bucket and one pipelined read
        of the records: the same cost whatever the number stored."""
        if self.states is None:
            return StatePage([], None)
        page = await self.states.page(state, after, limit, since)
        ids = [message_id for message_id, _, _ in page.entries]
        stored = await self.messages.get_many([i for i in ids if _valid_key(i)])
        records = []
        for message_id in ids:
            value = stored.get(message_id, (None, 0))[0]
            record = StatusRecord.model_validate_json(value) if value else None
            # The index may lag a record that moved on: never show it in the old state.
            if record is not None and record.state == state:
                records.append(record)
        return StatePage(records, page.next_after)


class _Turn:
    """`async with`: this process's turn at writing one record (see `StatusStore.apply`);
    the record's lock is dropped when no write holds or waits for it. A class, not an
    `asynccontextmanager`: two of these a text, and the generator's machinery cost more
    than the lock."""

    __slots__ = ("_id", "_lock", "_turns")

    def __init__(self, turns: dict[str, tuple[asyncio.Lock, list[int]]],
                 message_id: str) -> None:
        self._turns, self._id = turns, message_id

    async def __aenter__(self) -> None:
        turn = self._turns.get(self._id)
        if turn is None:
            turn = self._turns[self._id] = (asyncio.Lock(), [0])
        turn[1][0] += 1
        self._lock = turn[0]
        try:
            await self._lock.acquire()
        except BaseException:  # cancelled while waiting for the turn
            self._leave()
            raise

    async def __aexit__(self, *_: object) -> None:
        self._lock.release()
        self._leave()

    def _leave(self) -> None:
        users = self._turns[self._id][1]
        users[0] -= 1
        if not users[0]:
            del self._turns[self._id]


def _shown(record: StatusRecord | None) -> StatusRecord | None:
    """A record with no status (only ledger entries, see `settle`) is not shown."""
    return record if record is not None and record.history else None


async def retire_fold_consumer(js: JetStreamContext, stream: str, store: StatusStore,
                               batch: int = 256) -> int:
    """Fold the backlog of the durable consumer that folded status events before their
    producers did, then delete it (left behind, it would keep every status event pending
    for no one). Its backlog is folded first because a read folds a message's events but
    nothing else writes the state index and the provider ids of those events. Logged
    when it was there; how many events were folded."""
    try:
        await js.consumer_info(stream, RETIRED_CONSUMER)
    except NotFoundError:
        return 0
    folded = 0
    pull = await js.pull_subscribe_bind(durable=RETIRED_CONSUMER, stream=stream)
    try:
        while True:
            try:
                msgs = await pull.fetch(batch, timeout=1.0)
            except TimeoutError:
                msgs = []
            if not msgs:
                # What is delivered to an instance still running the older version (or to
                # one that died, until `ack_wait`) is that instance's; the rest is done.
                if not (await js.consumer_info(stream, RETIRED_CONSUMER)).num_pending:
                    break
                continue
            await asyncio.gather(*(_fold_retired(store, msg) for msg in msgs))
            folded += len(msgs)
    except Exception as error:  # tried again at the next start; reads fold meanwhile
        log.warning("consumer %s: its backlog is not folded (%s); kept until the next start",
                    RETIRED_CONSUMER, error)
        return folded
    finally:
        await pull.unsubscribe()
    await js.delete_consumer(stream, RETIRED_CONSUMER)
    log.info("consumer %s deleted after folding its last %d events: status events are "
             "folded by their producers now", RETIRED_CONSUMER, folded)
    return folded


async def _fold_retired(store: StatusStore, msg: Any) -> None:
    try:
        event = StatusEvent.model_validate_json(msg.data)
    except ValueError:
        await msg.ack()  # never folded (the consumer dead-lettered these)
        return
    if _valid_key(event.id):
        await store.apply(event, repair=True)  # it may have been half folded
    await msg.ack()


def _keep(remembered: OrderedDict[str, T], key: str, value: T) -> None:
    """Remember `value` under `key`, forgetting the least recently stored beyond
    `REMEMBERED`."""
    remembered[key] = value
    remembered.move_to_end(key)
    while len(remembered) > REMEMBERED:
        remembered.popitem(last=False)


# Dot-separated tokens of letters, digits (`\w` is `isalnum` or "_") and "-", "=".
_KEY = re.compile(r"[\w=-]+(?:\.[\w=-]+)*")


def _valid_key(key: str) -> bool:
    # One regex instead of a check per character: called several times per event.
    return len(key) <= 256 and _KEY.fullmatch(key) is not None
