"""Message settings: one record per phone number, kept in a KV bucket, read from memory.

Every instance watches the bucket and keeps the whole set in memory, so a change made
anywhere (API, CLI, another instance's TOML) applies everywhere within milliseconds and
routing a message never waits on the network. Writes go to the bucket first; the writing
instance applies them to its own view at once so it reads its own writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import nats.errors
from nats.aio.client import Client as NATS
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from pydantic import ValidationError

from pbxsms.bus.publish import Published
from pbxsms.core.health import metrics
from pbxsms.core.model.events import Route
from pbxsms.core.model.numbers import (
    NumberSettings,
    check_provider,
    first_error,
    hostname,
    number_key,
    parse_rows,
)
from pbxsms.core.model.phone import InvalidNumber, to_e164
from pbxsms.core.stores.conversations import Conversations

log = logging.getLogger("pbxsms.numbers")

NUMBERS_BUCKET = "sms_numbers"

# What a failed write to the bucket raises (NATS down, timeouts): worth another try.
STORE_ERRORS = (nats.errors.Error, asyncio.TimeoutError, ConnectionError)


@dataclass(frozen=True)
class NoRoute:
    """Why an inbound message has no route; `cause` is one word, `reason` a sentence."""

    cause: Literal["invalid", "unknown", "disabled", "provider"]
    reason: str


class NoSender(LookupError):
    """No number to send from; the message says what to configure."""


class NumberStore:
    """The message settings of every number: KV bucket plus an in-memory view."""

    def __init__(self, nc: NATS, kv: KeyValue, conversations: Conversations,
                 region: Callable[[], str], providers: Callable[[], Collection[str]]) -> None:
        self._nc = nc
        self.kv = kv
        self.conversations = conversations
        self._region = region
        self._providers = providers
        # E.164 → (revision, record or None once deleted): revisions order the watch's
        # updates against this instance's own writes.
        self._entries: dict[str, tuple[int, NumberSettings | None]] = {}
        # E.164 → (record, its route): built once per record, not on every message.
        self._routes: dict[str, tuple[NumberSettings, Route]] = {}
        self._loaded = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------

    async def start(self, timeout: float = 30.0) -> None:
        """Start watching; return once the view holds the whole bucket."""
        self._task = asyncio.create_task(self._watch(), name="numbers-watch")
        try:
            await asyncio.wait_for(self._loaded.wait(), timeout)
        except TimeoutError:
            raise RuntimeError(f"could not read the {NUMBERS_BUCKET} bucket") from None
        await self.conversations.start()

    async def stop(self) -> None:
        await self.conversations.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def ready(self) -> bool:
        return self._loaded.is_set() and self._task is not None and not self._task.done()

    async def _watch(self) -> None:
        """Follow the bucket for ever; re-read it whole after a reconnect or an error."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("watching %s failed (%s); watching again", NUMBERS_BUCKET, error)
                await asyncio.sleep(0.5)

    async def _follow(self) -> None:
        reconnects = self._nc.stats["reconnects"]
        watcher = await self.kv.watchall()
        snapshot: dict[str, tuple[int, NumberSettings | None]] | None = {}
        try:
            while True:
                try:
                    entry = await watcher.updates(timeout=1.0)  # type: ignore[no-untyped-call]
                except nats.errors.TimeoutError:
                    # An ordered consumer may silently miss what happened while the
                    # connection was down: start over from a fresh snapshot.
                    if self._nc.stats["reconnects"] != reconnects:
                        log.info("reconnected: re-reading %s", NUMBERS_BUCKET)
                        return
                    continue
                if entry is None:  # the snapshot is complete
                    if snapshot is not None:
                        self._install(snapshot)
                        snapshot = None
                    continue
                record = None
                if entry.operation not in (KV_DEL, KV_PURGE):
                    record = _decode(entry.key, entry.value)
                revision = entry.revision or 0
                number = "+" + entry.key
                if snapshot is not None:
                    snapshot[number] = (revision, record)
                else:
                    self._apply(number, revision, record)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    def _install(self, snapshot: dict[str, tuple[int, NumberSettings | None]]) -> None:
        # Own writes made while the snapshot was read are newer than all of it: keep them.
        newest = max((revision for revision, _ in snapshot.values()), default=0)
        for number, (revision, record) in self._entries.items():
            if revision > max(newest, snapshot.get(number, (0, None))[0]):
                snapshot[number] = (revision, record)
        self._entries = snapshot
        self._loaded.set()
        self._count()

    def _apply(self, number: str, revision: int, record: NumberSettings | None) -> None:
        if revision > self._entries.get(number, (0, None))[0]:
            self._entries[number] = (revision, record)
            self._count()

    def _count(self) -> None:
        records = self.all()
        metrics.NUMBERS.labels("true").set(sum(r.enabled for r in records))
        metrics.NUMBERS.labels("false").set(sum(not r.enabled for r in records))

    # -- reading (memory only) ----------------------------------------------------

    def normalise(self, number: object) -> str:
        """`number` as E.164 in the configured region; InvalidNumber when it is not one."""
        return to_e164(number, self._region())

    def _customer(self, number: str) -> str:
        # The same customer however the number was written; kept as is when unparseable.
        try:
            return self.normalise(number)
        except InvalidNumber:
            return number

    def get(self, number: str) -> NumberSettings | None:
        """The record of `number` (any common format); InvalidNumber when not a number."""
        return self._entries.get(self.normalise(number), (0, None))[1]

    def all(self) -> list[NumberSettings]:
        """Every record, ordered by number."""
        return sorted((record for _, record in self._entries.values() if record is not None),
                      key=lambda record: record.number)

    def route_inbound(self, to: str, provider: str) -> Route | NoRoute:
        """Where a message to our number `to`, received by `provider`, goes."""
        try:
            number = self.normalise(to)
        except InvalidNumber as error:
            return NoRoute("invalid", f"recipient {to!r} is not a phone number: {error}")
        record = self._entries.get(number, (0, None))[1]
        if record is None:
            return NoRoute("unknown", f"{number} has no message settings")
        if not record.enabled:
            return NoRoute("disabled", f"{number} is disabled in its message settings")
        if record.provider != provider:
            return NoRoute("provider", f"{number} belongs to provider {record.provider}, "
                                          f"but the message came from {provider}")
        cached = self._routes.get(number)
        if cached is not None and cached[0] is record:
            return cached[1]
        route = record.route()
        self._routes[number] = (record, route)
        return route

    def numbers_of(self, extension: str, domain: str | None = None) -> list[NumberSettings]:
        """The enabled numbers of an extension (in any tenant when `domain` is None)."""
        return [r for r in self.all() if r.enabled and r.extension == extension
                and (domain is None or r.domain == domain)]

    # -- writing ------------------------------------------------------------------

    def validate(self, data: Mapping[str, Any], prefix: str = "") -> NumberSettings:
        """A record from input, provider included; NumberError naming the field."""
        try:
            record = NumberSettings.parse(data, self._region())
        except ValidationError as error:
            raise first_error(error, prefix) from None
        check_provider(record, self._providers(), prefix)
        return record

    def validate_many(self, rows: Iterable[Mapping[str, Any]],
                      where: str = "numbers") -> list[NumberSettings]:
        return parse_rows(rows, self._region(), self._providers(), where)

    async def put(self, record: NumberSettings) -> bool:
        """Store `record` (replacing the number's settings); True when it is new."""
        created = self._entries.get(record.number, (0, None))[1] is None
        revision = await self.kv.put(record.key(), record.model_dump_json().encode())
        self._apply(record.number, revision, record)
        log.info("message settings of %s stored", record.number)
        return created

    async def upsert(self, records: Iterable[NumberSettings]) -> int:
        """Store each record that differs from what is stored; how many were written."""
        written = 0
        for record in records:
            if self._entries.get(record.number, (0, None))[1] != record:
                await self.put(record)
                written += 1
        return written

    async def delete(self, number: str) -> bool:
        """Remove a number's settings; False when it had none."""
        e164 = self.normalise(number)
        revision, record = self._entries.get(e164, (0, None))
        if record is None:
            return False
        await self.kv.delete(number_key(e164))
        # The marker's revision is not returned; any later write has a higher one.
        self._apply(e164, revision + 1, None)
        log.info("message settings of %s removed", e164)
        return True

    # -- conversations ------------------------------------------------------------

    def conversation_held(self, route: Route, customer: str) -> bool:
        """Whether `remember_conversation` has nothing to record: no extension, or the
        bucket holds this number for the conversation already (`Conversations.holds`)."""
        if route.extension is None:
            return True
        return self.conversations.holds(route.domain, route.extension,
                                        self._customer(customer), route.number)

    async def remember_conversation(self, route: Route,
                                    customer: str) -> asyncio.Future[Published] | None:
        """Start recording that `customer` texted `route.number`: the extension replies
        from it. The future settles with the write; None when there is nothing to record."""
        if route.extension is None:
            return None
        return await self.conversations.remember(route.domain, route.extension,
                                                 self._customer(customer), route.number)

    def sending_number(self, number: str) -> NumberSettings:
        """The settings of our number `number` to send from; NoSender when unusable."""
        try:
            record = self.get(number)
        except InvalidNumber as error:
            raise NoSender(f"from {number!r} is not a phone number: {error}") from None
        if record is None:
            raise NoSender(f"{number} is not one of the gateway's numbers")
        if not record.enabled:
            raise NoSender(f"{number} is disabled in its message settings")
        return record

    async def sender_for(self, extension: str, domain: str | None,
                         customer: str) -> NumberSettings:
        """The number an extension writes to `customer` from.

        The number the customer last texted this extension, while it is still the
        extension's and enabled; else the extension's first enabled number (lowest
        E.164). `extension` may be written `101@pbx.example.com` instead of giving
        `domain`; without a domain the extension must exist in one tenant only.
        """
        if domain is None and "@" in extension:
            extension, _, domain = extension.partition("@")
            domain = hostname(domain) or domain
        owned = self.numbers_of(extension, domain)
        if not owned:
            where = f"@{domain}" if domain else ""
            raise NoSender(f"extension {extension}{where} has no enabled number in the "
                           "message settings")
        tenants = sorted({r.domain or "" for r in owned})
        if len(tenants) > 1:
            raise NoSender(f"extension {extension} exists in several tenants "
                           f"({', '.join(tenants)}); write it as {extension}@<domain>")
        last = await self.conversations.number_for(owned[0].domain, extension,
                                                   self._customer(customer))
        for record in owned:
            if record.number == last:
                return record
        return owned[0]


def _decode(key: str, value: bytes | None) -> NumberSettings | None:
    try:
        return NumberSettings.model_validate_json(value or b"")
    except ValidationError as error:
        # Written by something other than pbxsms; ignoring it beats crashing the watch.
        log.error("ignoring unreadable message settings under key %s: %s", key,
                  first_error(error))
        return None
