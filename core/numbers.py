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
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import nats.errors
from nats.aio.client import Client as NATS
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from pydantic_core.core_schema import ValidationInfo

from pbxsms.bus.publish import Published
from pbxsms.core import metrics
from pbxsms.core.conversations import Conversations
from pbxsms.core.events import Route
from pbxsms.core.phone import InvalidNumber, to_e164

log = logging.getLogger("pbxsms.numbers")

NUMBERS_BUCKET = "sms_numbers"

# What a failed write to the bucket raises (NATS down, timeouts): worth another try.
STORE_ERRORS = (nats.errors.Error, asyncio.TimeoutError, ConnectionError)

_EXTENSION = re.compile(r"^[A-Za-z0-9_.*#+-]{1,64}$")
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_EMAIL_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")
_PROVIDER = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _fail(message: str) -> PydanticCustomError:
    # A custom error keeps pydantic's "Value error, " prefix out of what operators read.
    return PydanticCustomError("invalid", message)


def _hostname(text: str) -> str | None:
    """`text` as a lower-case host name, or None when it is not one."""
    try:
        host = text.strip().lower().encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        return None
    return host


def email_address(text: str) -> str:
    """A single address, domain lower-cased; ValueError naming what is wrong."""
    local, at, domain = text.strip().rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"{text!r} is not an email address")
    host = _hostname(domain)
    if (not _EMAIL_LOCAL.match(local) or local.startswith(".") or local.endswith(".")
            or ".." in local):
        raise ValueError(f"{text!r} is not an email address (the part before @)")
    if host is None or "." not in host or host.rsplit(".", 1)[1].isdigit():
        raise ValueError(f"{text!r} is not an email address (the domain)")
    return f"{local}@{host}"


class NumberSettings(BaseModel):
    """The message settings of one of our numbers (FS PBX "Message Settings")."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    number: str = Field(description="Our number, E.164 (any common format is accepted)")
    provider: str = Field(description="The enabled provider plugin that owns the number")
    extension: str | None = Field(None, description="Extension whose mobile app gets it")
    domain: str | None = Field(None, description="Tenant (PBX domain)")
    email: list[str] = Field(default_factory=list, description="Read-only copies")
    enabled: bool = True
    description: str = Field("", max_length=256)
    mobileapp_org: str | None = Field(None, max_length=128,
                                      description="The mobile app's organisation id")

    @classmethod
    def parse(cls, data: Mapping[str, Any], region: str = "US") -> NumberSettings:
        """Validate input (API body, TOML table, CSV row); numbers without `+` use `region`."""
        return cls.model_validate(dict(data), context={"region": region})

    @field_validator("number", mode="before")
    @classmethod
    def _number(cls, value: object, info: ValidationInfo) -> str:
        region = (info.context or {}).get("region", "US")
        try:
            return to_e164(value, region)
        except InvalidNumber as error:
            raise _fail(str(error)) from None

    @field_validator("provider", mode="before")
    @classmethod
    def _provider(cls, value: object) -> object:
        if isinstance(value, str) and not _PROVIDER.match(value.strip()):
            raise _fail("expected a provider plugin's name, e.g. clicksend")
        return value

    @field_validator("extension", mode="before")
    @classmethod
    def _extension(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str):
            value = value.strip() or None
            if value is not None and not _EXTENSION.match(value):
                raise _fail("expected an extension: letters, digits and _.*#+- only")
        return value

    @field_validator("domain", mode="before")
    @classmethod
    def _domain(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return None
            host = _hostname(value)
            if host is None:
                raise _fail("expected a domain name, e.g. pbx.example.com")
            return host
        return value

    @field_validator("email", mode="before")
    @classmethod
    def _email(cls, value: object) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            value = [part for part in re.split(r"[,;\s]+", value) if part]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise _fail("expected an email address or a list of them")
        try:
            return list(dict.fromkeys(email_address(v) for v in value))
        except ValueError as error:
            raise _fail(str(error)) from None

    @field_validator("mobileapp_org", mode="before")
    @classmethod
    def _org(cls, value: object) -> object:
        return (value.strip() or None) if isinstance(value, str) else value

    def route(self) -> Route:
        return Route(number=self.number, provider=self.provider, extension=self.extension,
                     domain=self.domain, email=list(self.email),
                     mobileapp_org=self.mobileapp_org)

    def key(self) -> str:
        return number_key(self.number)


def number_key(e164: str) -> str:
    """The KV key of a number: its digits (`+` is not allowed in keys)."""
    return e164.lstrip("+")


class NumberError(ValueError):
    """Invalid message settings; `field` names the offending one (e.g. `numbers[2].email`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def first_error(error: ValidationError, prefix: str = "") -> NumberError:
    """The first problem of a validation error, named by its field."""
    item = error.errors(include_url=False)[0]
    field = ".".join(str(part) for part in item["loc"] if not isinstance(part, int))
    message = item["msg"]
    if item["type"] == "extra_forbidden":
        message = "unknown field"
    elif item["type"] == "missing":
        message = "required"
    return NumberError(f"{prefix}{field or 'record'}", message)


def parse_rows(rows: Iterable[Mapping[str, Any]], region: str, providers: Collection[str],
               where: str = "numbers", known: str = "enabled providers") -> list[NumberSettings]:
    """Validate every row or none: NumberError names `<where>[i].<field>` of the first bad one.

    A number given twice is an error too, whatever its formatting.
    """
    records: list[NumberSettings] = []
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        prefix = f"{where}[{index}]."
        if not isinstance(row, Mapping):
            raise NumberError(f"{where}[{index}]", "expected a table of settings")
        try:
            record = NumberSettings.parse(row, region)
        except ValidationError as error:
            raise first_error(error, prefix) from None
        check_provider(record, providers, prefix, known)
        if record.number in seen:
            raise NumberError(f"{prefix}number",
                              f"{record.number} is also {where}[{seen[record.number]}]")
        seen[record.number] = index
        records.append(record)
    return records


def check_provider(record: NumberSettings, providers: Collection[str], prefix: str = "",
                   known: str = "enabled providers") -> None:
    if record.provider not in providers:
        names = ", ".join(sorted(providers)) or "none"
        raise NumberError(f"{prefix}provider", f"{record.provider!r} is not an enabled "
                                               f"provider plugin ({known}: {names})")


@dataclass(frozen=True)
class Unroutable:
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

    def route_inbound(self, to: str, provider: str) -> Route | Unroutable:
        """Where a message to our number `to`, received by `provider`, goes."""
        try:
            number = self.normalise(to)
        except InvalidNumber as error:
            return Unroutable("invalid", f"recipient {to!r} is not a phone number: {error}")
        record = self._entries.get(number, (0, None))[1]
        if record is None:
            return Unroutable("unknown", f"{number} has no message settings")
        if not record.enabled:
            return Unroutable("disabled", f"{number} is disabled in its message settings")
        if record.provider != provider:
            return Unroutable("provider", f"{number} belongs to provider {record.provider}, "
                                          f"but the message came from {provider}")
        return record.route()

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
            domain = _hostname(domain) or domain
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
