"""The state index: the messages now in each state, in the order they reached it, kept in
one KV bucket per state (`sms_states_<state>`, keyed by message id); and the move of the
index older versions kept in one bucket (`sms_states`, keys `<state>.<id>`).

A bucket per state lets a page be read by sequence with no subject filter, which the
server answers from per-block totals; a `<state>.>` filter over one shared bucket made it
match the filter against every key stored (100-400 ms a page at 200,000 stored).

`sending` is entered only once a message has been in it for `LINGER`: most sends are
accepted a few ms after it, and then neither the entry nor its erasure is written (two
of a send's nine requests). The status store keeps the others until then
(core/stores/status.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from pbxsms.bus.kv import Bucket, KeyPage
from pbxsms.bus.publish import Published
from pbxsms.core.model.events import State

log = logging.getLogger("pbxsms.core.stores.states")

PREFIX = "sms_states_"
# Where versions before the per-state buckets kept the whole index.
LEGACY_BUCKET = "sms_states"
# Entries moved from the old bucket per round trip.
MOVE_PAGE = 1000
_STATES = frozenset(state.value for state in State)
# Seconds a message is in `sending` before its index entry is written (a store's
# `linger`, set from this).
LINGER = 2.0


def bucket_name(state: State) -> str:
    """The bucket holding the messages now in `state`."""
    return f"{PREFIX}{state.value}"


class StateIndex:
    """Which messages are in each state (an entry per message, erased when it moves on)."""

    def __init__(self, buckets: Mapping[State, Bucket]) -> None:
        missing = sorted(state.value for state in set(State) - set(buckets))
        if missing:
            raise ValueError(f"no state index bucket for: {', '.join(missing)}")
        self.buckets = dict(buckets)

    @classmethod
    async def open(cls, bucket: Callable[[str], Awaitable[Bucket]]) -> StateIndex:
        """The index on the buckets `bucket(name)` returns (created when missing)."""
        states = list(State)
        opened = await asyncio.gather(*(bucket(bucket_name(state)) for state in states))
        return cls(dict(zip(states, opened, strict=True)))

    def enter(self, state: State, message_id: str, value: bytes) -> Awaitable[int]:
        """List the message in `state` (again: a repair rewrites the same key)."""
        return self.buckets[state].put(message_id, value)

    def leave(self, state: State, message_id: str) -> Awaitable[None]:
        """Erase the message from `state`, leaving no delete marker to step over."""
        return self.buckets[state].erase(message_id)

    async def send_enter(self, state: State, message_id: str,
                         value: bytes) -> asyncio.Future[Published]:
        """`enter` put in flight: await the future for its answer."""
        return await self.buckets[state].send_put(message_id, value)

    async def send_leave(self, state: State, message_id: str) -> asyncio.Future[int]:
        """`leave` put in flight: await the future for its answer."""
        return await self.buckets[state].send_erase(message_id)

    async def page(self, state: State, after: int = 0, limit: int = 100,
                   since: datetime | None = None) -> KeyPage:
        """Up to `limit` entries of `state` (key: the message id) after the cursor `after`
        (the bucket's revision) or from `since`."""
        return await self.buckets[state].page(after, limit, since)

    async def adopt(self, legacy: Bucket) -> int:
        """Move the entries of the old one-bucket index to the bucket of their state,
        oldest first, removing each page from the old bucket once it is written: bounded
        by the old bucket's size (its TTL), and an interrupted move resumes where it
        stopped (an entry moved twice is written again, never listed twice). Returns how
        many were moved."""
        moved = 0
        while True:
            page = await legacy.page(0, MOVE_PAGE)
            writes: list[asyncio.Future[Published]] = []
            for key, _, value in page.entries:
                name, _, message_id = key.partition(".")
                if name not in _STATES:
                    log.warning("state index: old entry %r names no state; dropped", key)
                    continue
                writes.append(await self.buckets[State(name)].send_put(message_id, value))
            await asyncio.gather(*writes)
            moved += len(writes)
            last = page.next_after or (page.entries[-1][1] if page.entries else 0)
            if last:
                await legacy.forget_before(last + 1)
            if page.next_after is None:
                return moved


async def move_legacy_index(js: JetStreamContext, index: StateIndex,
                            legacy: Callable[[], Awaitable[Bucket]]) -> int:
    """At start: move an index written by an older version into `index` (see
    `StateIndex.adopt`), logged; nothing to do (one request) once it is empty or absent.
    The old bucket is left empty rather than deleted: an older instance still running
    during a rolling upgrade writes to it, and the next start moves what it wrote."""
    try:
        info = await js.stream_info(f"KV_{LEGACY_BUCKET}")
    except NotFoundError:
        return 0
    if not info.state.messages:
        return 0
    log.info("state index: moving %d entries of bucket %s to one bucket per state",
             info.state.messages, LEGACY_BUCKET)
    began = time.monotonic()
    moved = await index.adopt(await legacy())
    log.info("state index: moved %d entries in %.1f s; bucket %s is empty (delete it once "
             "no older version runs)", moved, time.monotonic() - began, LEGACY_BUCKET)
    return moved
