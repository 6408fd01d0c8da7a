"""The console's read model: conversations and their messages, kept in two KV buckets.

A durable consumer (`console-index`) folds `sms.inbound.>`, `sms.outbound`,
`sms.status.>` and `sms.dead.>` into:

- `console_threads`: `t.<conv>` one summary per conversation (our number, the customer,
  how many messages, unread, the last one); `w.<provider>` when the provider last
  pushed a message; `d.<consumer>.<seq>` each dead letter;
- `console_messages`: `m.<conv>.<n>` the n-th message of a conversation (body, state,
  reason) and `i.<id>` → `<conv>.<n>`, so a status event finds its message.

A thread page reads one summary and then its last messages by key, whatever the number
of messages stored: two pipelined round trips. Every write lands on the buckets'
streams, whose sequences the live pages follow (live.py). Bodies are kept as long as the
events (`[bus] max_age`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import DeliverPolicy
from nats.js.errors import KeyWrongLastSequenceError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pbxsms.core.plugin_api import (
    Bucket,
    Delivery,
    InboundMessage,
    OutboundRequest,
    Permanent,
    Refusal,
    Retry,
    State,
    StatusEvent,
    modify,
    utcnow,
)

if TYPE_CHECKING:
    from pbxsms.core.plugin_api import Runtime

log = logging.getLogger("pbxsms.console.index")

CONSUMER = "console-index"
THREADS_BUCKET = "console_threads"
MESSAGES_BUCKET = "console_messages"
PAGE = 50
WEBHOOK_PRECISION = 1.0  # seconds
PREVIEW = 140
# A status event may be folded before its message (handlers run concurrently): it waits
# this many attempts for the message.
STATUS_PATIENCE = 6

_DIGITS = re.compile(r"^\+?[0-9]{1,20}$")
FAILED_STATES = frozenset({State.FAILED.value, State.UNROUTABLE.value, State.UNKNOWN.value})


def number_token(number: str) -> str:
    """A number as one KV key token: its digits, or a digest for alphanumeric senders."""
    if _DIGITS.match(number):
        return number.lstrip("+")
    return "x" + hashlib.sha256(number.encode()).hexdigest()[:16]


def conversation_key(ours: str, customer: str) -> str:
    return f"{number_token(ours or '-')}.{number_token(customer)}"


class Thread(BaseModel):
    """One conversation: our number and the customer's."""

    conv: str
    ours: str
    customer: str
    count: int = 0
    unread: int = 0
    last_id: str = ""
    last_body: str = ""
    last_direction: Literal["inbound", "outbound"] = "inbound"
    last_state: str = ""
    last_at: datetime = Field(default_factory=utcnow)


class Entry(BaseModel):
    """One message of a conversation, with its delivery state."""

    id: str
    conv: str
    n: int
    direction: Literal["inbound", "outbound"]
    ours: str
    customer: str
    body: str
    at: datetime
    state: str
    reason: str | None = None
    channels: dict[str, str] = Field(default_factory=dict)
    changed: dict[str, datetime] = Field(default_factory=dict)  # per channel: the last event
    provider: str | None = None
    stream_seq: int = 0
    redelivered_at: datetime | None = None
    resend_of: str | None = None  # outbound: the failed message this one sends again


class Dead(BaseModel):
    """A dead letter (docs/events.md) as the Problems page lists it."""

    model_config = ConfigDict(extra="ignore")

    key: str
    consumer: str
    subject: str
    stream_seq: int
    attempts: int
    reason: str
    id: str | None = None
    at: datetime
    redelivered_at: datetime | None = None


def _fold_state(entry: Entry, event: StatusEvent) -> Entry | None:
    """`entry` after `event`, or None when nothing changes. A final state stays, and
    `queued` (the first) never replaces a later one; repeats change nothing."""
    channel = event.channel or "-"
    current = entry.channels.get(channel)
    if current is not None and (State(current).final or event.state == State.QUEUED):
        return None
    if current == event.state.value:
        return None
    # Events are folded concurrently, so they may come out of order: the newest wins.
    seen = entry.changed.get(channel)
    if seen is not None and event.at < seen:
        return None
    channels = {**entry.channels, channel: event.state.value}
    changed = {**entry.changed, channel: event.at}
    reason = event.reason if event.state.value in FAILED_STATES | {"retrying"} else entry.reason
    if event.state == State.UNROUTABLE:
        state = State.UNROUTABLE.value
    elif entry.direction == "outbound":
        state = event.state.value
    else:  # an inbound message: failed if any channel failed, delivered once any did
        values = set(channels.values())
        state = next((s for s in ("failed", "retrying", "delivered", "sending")
                      if s in values), event.state.value)
    if entry.state == State.UNROUTABLE.value and entry.redelivered_at is None:
        state = entry.state
    return entry.model_copy(update={"channels": channels, "changed": changed, "state": state,
                                    "reason": reason})


class Index:
    """Reads and folds the console's read model."""

    def __init__(self, runtime: Runtime, threads: Bucket, messages: Bucket,
                 direct: bool = False) -> None:
        self.runtime = runtime
        self.threads = threads
        self.messages = messages
        # Whether the messages bucket answers batched direct gets (see `_read_last`).
        self.direct = direct
        self._webhooks: dict[str, datetime] = {}

    # -- reads --------------------------------------------------------------------

    async def thread(self, conv: str) -> Thread | None:
        if not _key_ok(conv):
            return None
        value, _ = await self.threads.get(f"t.{conv}")
        return Thread.model_validate_json(value) if value else None

    async def page(self, thread: Thread, before: int | None = None,
                   size: int = PAGE) -> list[Entry]:
        """Up to `size` messages before position `before` (default: the newest), oldest
        first; read by key, so the cost does not grow with the number stored."""
        end = min(thread.count, (before - 1) if before else thread.count)
        keys = [f"m.{thread.conv}.{n}" for n in range(max(1, end - size + 1), end + 1)]
        if self.direct:
            found = await self._read_last(keys)
        else:
            found = [v for v, _ in (await self.messages.get_many(keys)).values() if v]
        entries = [Entry.model_validate_json(value) for value in found]
        return sorted(entries, key=lambda e: e.n)

    async def _read_last(self, keys: list[str], timeout: float = 5.0) -> list[bytes]:
        """The values of `keys` in one batched direct get (nats-server 2.11+): one request,
        answered by any server of the stream, instead of a JetStream API call per key."""
        nc = self.runtime.nc
        assert nc is not None
        prefix = f"$KV.{MESSAGES_BUCKET}."
        found: list[bytes] = []
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def collect(msg: Msg) -> None:
            headers = msg.headers or {}
            if "Status" in headers:  # 204: end of the batch; 404: none of them exist
                if not done.done():
                    done.set_result(None)
            elif headers.get("KV-Operation") not in ("DEL", "PURGE") and msg.data:
                found.append(msg.data)

        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox, cb=collect)
        try:
            request = json.dumps({"multi_last": [prefix + key for key in keys]}).encode()
            await nc.publish(f"$JS.API.DIRECT.GET.KV_{MESSAGES_BUCKET}", request, reply=inbox)
            await asyncio.wait_for(done, timeout)
        except TimeoutError as error:
            raise Refusal(503, f"the message bus did not answer a read of {len(keys)} "
                          f"messages in {timeout:g} s; try again") from error
        finally:
            await sub.unsubscribe()
        return found

    async def all_threads(self) -> list[Thread]:
        """Every conversation, the latest first."""
        entries = await self.threads.entries_under("t")
        found = [Thread.model_validate_json(value) for value in entries.values()]
        return sorted(found, key=lambda t: t.last_at, reverse=True)

    async def search(self, text: str, conversations: set[str], limit: int = 50,
                     budget: float = 3.0) -> list[Entry]:
        """Messages of `conversations` whose body contains `text` (any case), newest
        first: a scan of the messages bucket's stream, bounded by `limit` and `budget`."""
        needle = text.casefold()
        found: list[Entry] = []
        deadline = time.monotonic() + budget
        sub = await self.runtime.js.subscribe(
            f"$KV.{MESSAGES_BUCKET}.m.>", ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL)
        try:
            while time.monotonic() < deadline:
                try:
                    msg = await sub.next_msg(timeout=max(deadline - time.monotonic(), 0.01))
                except NatsTimeout:
                    break
                # A cheap look at the raw JSON first; the body itself decides.
                if msg.data and needle in msg.data.decode(errors="replace").casefold():
                    entry = Entry.model_validate_json(msg.data)
                    if entry.conv in conversations and needle in entry.body.casefold():
                        found.append(entry)
                if msg.metadata.num_pending == 0:
                    break
        finally:
            await sub.unsubscribe()
        found.sort(key=lambda e: e.at, reverse=True)
        return found[:limit]

    async def entry(self, message_id: str) -> Entry | None:
        if not _key_ok(message_id):
            return None
        pointer, _ = await self.messages.get(f"i.{message_id}")
        if pointer is None:
            return None
        value, _ = await self.messages.get(f"m.{pointer.decode()}")
        return Entry.model_validate_json(value) if value else None

    async def entries(self, message_ids: list[str]) -> dict[str, Entry]:
        usable = [i for i in message_ids if _key_ok(i)]
        pointers = await self.messages.get_many([f"i.{i}" for i in usable])
        keys = {f"m.{p.decode()}": key[2:] for key, (p, _) in pointers.items() if p}
        values = await self.messages.get_many(list(keys))
        return {keys[key]: Entry.model_validate_json(value)
                for key, (value, _) in values.items() if value}

    async def last_webhooks(self, providers: list[str]) -> dict[str, datetime | None]:
        values = await self.threads.get_many([f"w.{p}" for p in providers if _key_ok(p)])
        return {key[2:]: datetime.fromisoformat(value.decode()) if value else None
                for key, (value, _) in values.items()}

    async def dead_letters(self) -> list[Dead]:
        entries = await self.threads.entries_under("d")
        found = [Dead.model_validate_json(value) for value in entries.values()]
        return sorted(found, key=lambda d: d.at, reverse=True)

    async def dead_letter(self, key: str) -> Dead | None:
        if not _key_ok(key) or not key.startswith("d."):
            return None
        value, _ = await self.threads.get(key)
        return Dead.model_validate_json(value) if value else None

    async def mark_read(self, conv: str) -> None:
        def change(current: bytes | None) -> bytes | None:
            if current is None:
                return None
            thread = Thread.model_validate_json(current)
            return thread.model_copy(update={"unread": 0}).model_dump_json().encode() \
                if thread.unread else None

        await modify(self.threads, f"t.{conv}", change)

    async def mark_redelivered(self, key: str, bucket: Literal["threads", "messages"]) -> None:
        store = self.threads if bucket == "threads" else self.messages

        def change(current: bytes | None) -> bytes | None:
            if current is None:
                return None
            data = json.loads(current)
            data["redelivered_at"] = utcnow().isoformat()
            return json.dumps(data).encode()

        await modify(store, key, change)

    # -- the fold -----------------------------------------------------------------

    async def handle(self, delivery: Delivery) -> None:
        """Consumer handler: one event of `sms.>` into the read model."""
        subject = delivery.subject
        try:
            if subject.startswith("sms.inbound."):
                await self._inbound(InboundMessage.model_validate_json(delivery.data),
                                    delivery.stream_seq)
            elif subject == "sms.outbound":
                await self._outbound(OutboundRequest.model_validate_json(delivery.data),
                                     delivery.stream_seq)
            elif subject.startswith("sms.status."):
                await self._status(StatusEvent.model_validate_json(delivery.data), delivery)
            elif subject.startswith("sms.dead."):
                await self._dead(delivery.data)
        except ValidationError as error:
            raise Permanent(f"not a readable event: {error.errors()[0]['msg']}") from error
        except (ValueError, KeyError, TypeError) as error:  # a dead letter's JSON
            raise Permanent(f"not a readable event: {error!r}") from error

    async def _inbound(self, message: InboundMessage, seq: int) -> None:
        state = "received" if message.route else State.UNROUTABLE.value
        await self._add(message.id, "inbound", message.to, message.from_, message.body,
                        message.received_at, state, message.provider, seq)
        await self._webhook_seen(message.provider, message.received_at)

    async def _webhook_seen(self, provider: str, at: datetime) -> None:
        """Record when `provider` last pushed a message, at most once a second per
        process: every inbound message passes here, and one key for all of them would
        be a hot spot. A plain write, since a second's disorder between instances does
        not matter to "last webhook 3 min ago"."""
        last = self._webhooks.get(provider)
        if last is not None and (at - last).total_seconds() < WEBHOOK_PRECISION:
            return
        self._webhooks[provider] = at
        await self.threads.put(f"w.{provider}", at.isoformat().encode())

    async def _outbound(self, request: OutboundRequest, seq: int) -> None:
        # Requests taken by the API carry their number; one published by a service with
        # only an extension is listed under "no number".
        ours = request.from_ or ""
        await self._add(request.id, "outbound", ours, request.to, request.body,
                        request.requested_at, State.QUEUED.value, request.provider, seq,
                        resend_of=request.resend_of)

    async def _add(self, message_id: str, direction: Literal["inbound", "outbound"],
                   ours: str, customer: str, body: str, at: datetime, state: str,
                   provider: str | None, seq: int, resend_of: str | None = None) -> None:
        if not _key_ok(message_id):
            raise Permanent(f"not a usable message id: {message_id!r}")
        pointer, _ = await self.messages.get(f"i.{message_id}")
        if pointer is not None:
            return  # a redelivery, or a re-delivered inbound message: listed once
        conv = conversation_key(ours, customer)
        position: list[int] = []

        def grow(current: bytes | None) -> bytes:
            thread = (Thread.model_validate_json(current) if current
                      else Thread(conv=conv, ours=ours, customer=customer))
            update: dict[str, Any] = {"count": thread.count + 1}
            if at >= thread.last_at or thread.count == 0:
                update.update(last_id=message_id, last_body=body[:PREVIEW],
                              last_direction=direction, last_state=state, last_at=at)
            if direction == "inbound":
                update["unread"] = thread.unread + 1
            position[:] = [thread.count + 1]
            return thread.model_copy(update=update).model_dump_json().encode()

        await modify(self.threads, f"t.{conv}", grow)
        n = position[0]
        try:
            await self.messages.create(f"i.{message_id}", f"{conv}.{n}".encode())
        except KeyWrongLastSequenceError:  # another instance indexed it at the same moment
            log.debug("message %s indexed elsewhere", message_id)
            return
        entry = Entry(id=message_id, conv=conv, n=n, direction=direction, ours=ours,
                      customer=customer, body=body, at=at, state=state, provider=provider,
                      stream_seq=seq, resend_of=resend_of)
        await self.messages.put(f"m.{conv}.{n}", entry.model_dump_json().encode())

    async def _status(self, event: StatusEvent, delivery: Delivery) -> None:
        if not _key_ok(event.id):
            raise Permanent(f"not a usable message id: {event.id!r}")
        pointer, _ = await self.messages.get(f"i.{event.id}")
        if pointer is None:
            if delivery.attempt < STATUS_PATIENCE:
                raise Retry("its message is not indexed yet", delay=0.1 * delivery.attempt)
            # Its message came before the console was enabled (the index starts with new
            # events): nothing to show it on. The status itself is kept by the core.
            log.info("status of message %s not shown: the console never saw the message",
                     event.id, extra={"msg_id": event.id})
            return
        key = f"m.{pointer.decode()}"
        folded: list[Entry] = []

        def change(current: bytes | None) -> bytes | None:
            if current is None:
                return None
            entry = _fold_state(Entry.model_validate_json(current), event)
            folded[:] = [entry] if entry else []
            return entry.model_dump_json().encode() if entry else None

        await modify(self.messages, key, change)
        if not folded:
            return
        entry = folded[0]

        def last(current: bytes | None) -> bytes | None:
            if current is None:
                return None
            thread = Thread.model_validate_json(current)
            if thread.last_id != entry.id or thread.last_state == entry.state:
                return None
            return thread.model_copy(update={"last_state": entry.state}).model_dump_json() \
                .encode()

        await modify(self.threads, f"t.{entry.conv}", last)

    async def _dead(self, data: bytes) -> None:
        letter = json.loads(data)
        key = f"d.{_token(str(letter['consumer']))}.{letter['stream_seq']}"
        dead = Dead.model_validate({**letter, "key": key})  # `sms.dead.<consumer>` as is
        value = dead.model_dump_json().encode()
        await modify(self.threads, key, lambda current: value if current is None else None)


_KEY = re.compile(r"^[A-Za-z0-9_=-]+(?:\.[A-Za-z0-9_=-]+)*$")


def _key_ok(key: str) -> bool:
    return len(key) <= 200 and _KEY.match(key) is not None


def _token(text: str) -> str:
    return text if _KEY.match(text) and "." not in text else number_token(text)
