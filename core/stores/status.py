"""Message status: a projection of `sms.status.>` into a KV bucket, so any instance answers.

Status events are the source of truth; this store folds them into one record per message
(current state, per-channel state, history). A read (`get`) folds the message's own events
(`sms.status.<id>`) onto that record, so it is as fresh as the stream however far the
folds are behind. The store indexes provider ids (e.g. ClickSend's
`message_id`) back to ours for delivery receipts, and indexes messages by current state
(core/stores/states.py: an entry per message, erased when it moves on) so that e.g. the
unroutable messages can be listed page by page in the order they got there, however many
are stored. A channel in a final state is never moved back by a late or repeated event,
and no channel by an event older than its current state (events are folded concurrently);
the event still appears in the history.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel, Field

from pbxsms.bus import kv as kvs
from pbxsms.bus.consumer import Delivery, Permanent
from pbxsms.bus.kv import Bucket
from pbxsms.bus.stream import SubjectReader
from pbxsms.core.model.events import SenderType, State, StatusEvent, utcnow
from pbxsms.core.stores.states import StateIndex

MESSAGES_BUCKET = "sms_messages"
PROVIDER_IDS_BUCKET = "sms_provider_ids"

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


class HistoryEntry(BaseModel):
    state: State
    channel: str | None = None
    reason: str | None = None
    attempt: int | None = None
    provider_message_id: str | None = None
    error_code: str | None = None
    at: datetime


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


def apply(record: StatusRecord | None, event: StatusEvent,
          max_history: int = MAX_HISTORY) -> StatusRecord:
    """Fold one status event into the record (pure; safe to repeat). The history keeps
    its first entry and the newest, `max_history` in all; `history_dropped` counts the
    rest."""
    entry = _entry(event)
    if record is None:
        record = StatusRecord(id=event.id, direction=event.direction, state=event.state)
    elif entry in record.history:
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
                        error_code=event.error_code, at=event.at)


def fold_onto(stored: StatusRecord | None, events: list[StatusEvent], unread: int = 0,
              max_history: int = MAX_HISTORY) -> StatusRecord | None:
    """`stored` (the folded record, if any) with those of `events` it has not folded yet
    folded onto it: what a fresh read shows. `unread`: events of the message not in
    `events` nor known to be in `stored`, counted in `history_dropped`.

    An event whose entry is in `stored`'s history was folded. One that is not was not
    either, unless `stored` dropped entries (`history_dropped`): a dropped entry is older
    than every entry kept but the first, so then only events newer than the newest entry
    are folded, and a folded event is never counted twice."""
    # As stored: the folds below change the record (and its history) in place.
    folded = list(stored.history) if stored is not None else []
    newest = folded[-1].at if stored is not None and stored.history_dropped and folded else None
    stored_at = stored.updated_at if stored is not None else None
    record, changed_at = stored, None
    for event in events:
        if _entry(event) in folded or (newest is not None and event.at <= newest):
            continue
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
    # Events are folded concurrently, so they may come out of order: the newest wins, and
    # `queued` (a channel's first state, published by another process) never replaces one.
    if current is None or (not current.state.final and event.at >= current.at
                           and event.state != State.QUEUED):
        record.channels[channel] = ChannelStatus(state=event.state, attempt=event.attempt,
                                                 reason=event.reason, at=event.at)


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
        # What this process last wrote per record (value, revision): the next fold of
        # the same message starts from it instead of reading it back. A write by
        # another instance makes the compare-and-set fail, and the record is read.
        self._written: OrderedDict[str, tuple[bytes, int]] = OrderedDict()
        # Provider ids this process stored, so a fold does not store them again.
        self._remembered: OrderedDict[str, str] = OrderedDict()
        # The folds of one message in this process take turns (see `apply`): the lock
        # of each message being folded, and how many folds hold or wait for it.
        self._turns: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    async def get(self, message_id: str) -> StatusRecord | None:
        """The message's status now: its folded record with its events on
        `sms.status.<id>` that the `status-store` consumer has not folded yet (during a
        burst the folds fall behind), or None when neither exists. One round trip: the
        record and the events are asked for together."""
        if not _valid_key(message_id):
            return None
        if self.events is None:
            value, _ = await self.messages.get(message_id)
            return StatusRecord.model_validate_json(value) if value else None
        subject = f"sms.status.{message_id}"
        reading = await self.events.first(subject, self.read_events)
        value, _ = await self.messages.get(message_id)
        read = await reading
        stored = StatusRecord.model_validate_json(value) if value else None
        found = read.messages
        if read.more:  # flooded: the first ones are in the folded record; the newest
            found = [*found, *(await (await self.events.last(subject))).messages]
        events = []
        for _, data in found:
            try:
                events.append(StatusEvent.model_validate_json(data))
            except ValueError:
                continue  # the consumer dead-letters it (`handle`): never folded
        # The unread (flooded) events are counted by the folded record, if there is one.
        unread = max(0, read.more - 1) if stored is None else 0
        return fold_onto(stored, [e for e in events if e.id == message_id], unread,
                         self.max_history)

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
        if _valid_key(key) and not self._stored(provider, provider_message_id, message_id):
            await self.provider_ids.put(key, message_id.encode())
            _keep(self._remembered, key, message_id)

    def _stored(self, provider: str, provider_message_id: str, message_id: str) -> bool:
        """Whether this process already stored this provider id for `message_id`."""
        return self._remembered.get(f"{provider}.{provider_message_id}") == message_id

    async def apply(self, event: StatusEvent, repair: bool = True) -> StatusRecord:
        """Fold `event` into its record (compare-and-set against concurrent writers).

        `repair` rewrites the state index even when the state did not change: for a
        redelivered event, whose first fold may have died before its index write.

        The folds of one message in this process take turns, so the second starts from
        the record the first wrote instead of losing the compare-and-set to it and
        reading the record back (four NATS messages more). Other instances still race
        and lose to the compare-and-set, as before.
        """
        if not _valid_key(event.id):
            raise ValueError(f"not a usable message id: {event.id!r}")
        lock, users = self._turns.setdefault(event.id, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                return await self._fold(event, repair)
        finally:
            users[0] -= 1
            if not users[0]:
                del self._turns[event.id]

    async def _fold(self, event: StatusEvent, repair: bool) -> StatusRecord:
        before: list[State] = []
        folded: list[StatusRecord] = []

        def change(current: bytes | None) -> bytes:
            record = StatusRecord.model_validate_json(current) if current else None
            before[:] = [record.state] if record else []
            # The last call's record is the one written: no need to read it back.
            folded[:] = [apply(record, event, self.max_history)]
            return folded[0].model_dump_json().encode()

        known: tuple[bytes | None, int] | None = self._written.get(event.id)
        if known is None and event.direction == "inbound":
            # An inbound message's record starts with the status of its first channel,
            # mostly folded here: try creating it rather than reading nothing first.
            known = (None, 0)
        value, revision = await kvs.modify(self.messages, event.id, change, known=known)
        if value is not None and revision > self._written.get(event.id, (b"", 0))[1]:
            _keep(self._written, event.id, (value, revision))
        record = folded[0]
        # The rest are independent writes: one round trip for all of them.
        writes = self._index(record, before[0] if before else None, repair)
        if event.provider_message_id and event.channel and not self._stored(
                event.channel, event.provider_message_id, event.id):
            writes.append(self.remember_provider_id(event.channel, event.provider_message_id,
                                                    event.id))
        await kvs.write_all(*writes)
        return record

    def _index(self, record: StatusRecord, before: State | None,
               repair: bool) -> list[Awaitable[object]]:
        # An unchanged state needs no write, except to repair one lost to a crash;
        # `in_state` re-checks each record, so a stale entry is never shown.
        if self.states is None or (before == record.state and not repair):
            return []
        writes: list[Awaitable[object]] = [self.states.enter(
            record.state, record.id, record.updated_at.isoformat().encode())]
        if before is not None and before != record.state:
            writes.append(self.states.leave(before, record.id))
        return writes

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

    async def handle(self, delivery: Delivery) -> None:
        """Consumer handler for `sms.status.>`."""
        try:
            event = StatusEvent.model_validate_json(delivery.data)
            _valid = _valid_key(event.id)
        except ValueError as error:
            raise Permanent(f"not a status event: {error}") from error
        if not _valid:
            raise Permanent(f"not a usable message id: {event.id!r}")
        await self.apply(event, repair=delivery.attempt > 1)


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
