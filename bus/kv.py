"""JetStream key-value buckets: created idempotently, updated with optimistic concurrency.

`Bucket` reads and writes a bucket through the gateway's `Publisher`: the KV operations
of a message's hot path (status folds, the delivery ledger) are then pipelined requests
on one reply subscription, not nats-py's request machinery each. Watches still use
nats-py's KeyValue (`Bucket.kv`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from pbxsms.bus.publish import BusError, Published, Publisher, PublishError, batch_messages

log = logging.getLogger("pbxsms.bus.kv")


async def ensure_kv(js: JetStreamContext, bucket: str, ttl: float | None = None,
                    replicas: int = 1, history: int = 1) -> KeyValue:
    """The bucket, created when missing (file storage, so it survives restarts), with
    direct gets allowed (`Bucket.page` reads pages of keys with one); an existing
    one gets `ttl` (e.g. one an older version created without it) and direct gets."""
    try:
        return await js.create_key_value(KeyValueConfig(
            bucket=bucket, ttl=ttl, replicas=replicas, history=history,
            storage=StorageType.FILE, direct=True))
    except Exception as error:
        # Exists with other settings (e.g. created by an older version): use it, with
        # this TTL (storage must not grow without limit) and direct gets, other settings
        # as they are.
        log.debug("bucket %s exists (%s); using it", bucket, error)
        kv = await js.key_value(bucket)
        await _allow_direct(js, bucket)
    if ttl is not None:
        info = await js.stream_info(f"KV_{bucket}")
        if info.config.max_age != ttl:
            info.config.max_age = ttl
            await js.update_stream(info.config)
            log.info("bucket %s: entries now expire after %g s", bucket, ttl)
    return kv


async def _allow_direct(js: JetStreamContext, bucket: str) -> None:
    try:
        info = await js.stream_info(f"KV_{bucket}")
        if not info.config.allow_direct:
            info.config.allow_direct = True
            await js.update_stream(info.config)
    except Exception as error:  # listing pages then fails with the reason
        log.warning("bucket %s: direct gets not allowed (%s)", bucket, error)


# JetStream's error code for a compare-and-set that lost (wrong last sequence).
WRONG_LAST_SEQUENCE = 10071
# ... and for a read of a key that has no message.
NO_MESSAGE = 10037
# The JetStream API of our account (pbxsms uses no JetStream domains).
API = "$JS.API"


@dataclass(frozen=True)
class KeyPage:
    """A page of a bucket's keys: (key, revision, value) in the order they were written;
    `next_after` continues it (None: nothing more)."""

    entries: list[tuple[str, int, bytes]]
    next_after: int | None


class Bucket:
    """One KV bucket, its reads and writes pipelined through the Publisher."""

    def __init__(self, kv: KeyValue, publisher: Publisher, name: str,
                 timeout: float = 5.0) -> None:
        self.kv = kv
        self.name = name
        self._publisher = publisher
        self._timeout = timeout
        self._subject = f"$KV.{name}."
        self._get = f"{API}.STREAM.MSG.GET.KV_{name}"
        self._info = f"{API}.STREAM.INFO.KV_{name}"

    async def get(self, key: str) -> tuple[bytes | None, int]:
        """Value and revision, read from the stream's leader; (None, 0) when absent or
        deleted."""
        return await (await self._ask_last(key))

    async def get_many(self, keys: Sequence[str]) -> dict[str, tuple[bytes | None, int]]:
        """`get` of many keys, every request in flight before any answer is awaited."""
        pending = [await self._ask_last(key) for key in keys]
        return dict(zip(keys, await asyncio.gather(*pending), strict=True))

    async def put(self, key: str, value: bytes) -> int:
        """Store `value`; its revision."""
        return await self._write(key, value, None)

    async def send_put(self, key: str, value: bytes) -> asyncio.Future[Published]:
        """Put a write of `value` in flight, so that the caller's next publish shares its
        round trip; the future gives the PubAck (`seq` is the revision)."""
        return await self._publisher.send(self._subject + key, value, timeout=self._timeout)

    async def update(self, key: str, value: bytes, last: int) -> int:
        """Store `value` if the key's revision is still `last` (0: never written);
        KeyWrongLastSequenceError when another writer came first."""
        return await self._write(key, value, {"Nats-Expected-Last-Subject-Sequence": str(last)})

    async def create(self, key: str, value: bytes) -> int:
        """Store `value` if the key is absent or deleted (rare: nats-py's own way)."""
        return await self.kv.create(key, value)

    async def delete(self, key: str) -> None:
        """Mark the key deleted (its history is kept until the bucket's TTL)."""
        await self._write(key, b"", {"KV-Operation": "DEL"})

    async def erase(self, key: str) -> None:
        """Remove the key with its history, leaving no delete marker behind (an index whose
        entries come and go would otherwise keep one per entry ever made)."""
        request = json.dumps({"filter": self._subject + key}).encode()
        await (await self._publisher.ask(f"{API}.STREAM.PURGE.KV_{self.name}", request,
                                         _purged, self._timeout))

    async def send_erase(self, key: str) -> asyncio.Future[int]:
        """`erase` put in flight (see `send_put`); the future gives how many it removed."""
        request = json.dumps({"filter": self._subject + key}).encode()
        return await self._publisher.ask(f"{API}.STREAM.PURGE.KV_{self.name}", request,
                                         _purged, self._timeout)

    async def forget_before(self, revision: int) -> int:
        """Remove every entry written before `revision`, leaving no marker; how many."""
        request = json.dumps({"seq": revision}).encode()
        return await (await self._publisher.ask(f"{API}.STREAM.PURGE.KV_{self.name}", request,
                                                _purged, self._timeout))

    async def page(self, after: int = 0, limit: int = 100,
                   since: datetime | None = None) -> KeyPage:
        """Up to `limit` live keys with their revision and value, in the order they were
        written, from revision `after + 1` (or the first written at or after `since`).

        One batched direct get by sequence with no subject filter: the server then counts
        what is left by its per-block totals instead of matching a wildcard against every
        key, so a page costs the same however many keys are stored (keep one bucket per
        listing, e.g. one per state)."""
        request: dict[str, object] = {"batch": limit}
        if since is not None and after == 0:
            request["start_time"] = since.astimezone(UTC).isoformat().replace("+00:00", "Z")
        else:
            request["seq"] = after + 1
        answers = await (await self._publisher.ask_all(
            f"{API}.DIRECT.GET.KV_{self.name}", json.dumps(request).encode(), batch_messages,
            self._timeout))
        found: list[tuple[str, int, bytes]] = []
        last = after
        for msg in answers:
            headers = msg.headers or {}
            last = int(headers["Nats-Sequence"])
            if headers.get("KV-Operation") not in ("DEL", "PURGE"):
                found.append((headers.get("Nats-Subject", "")[len(self._subject):], last,
                              msg.data))
        # A full batch may have more after it, even if markers were in it.
        return KeyPage(found, last if len(answers) >= limit else None)

    async def entries_under(self, prefix: str) -> dict[str, bytes]:
        """Every live key under `prefix.` with its value: the keys from the stream's
        subject list (filtered by the server), the values in one pipelined round. (A
        nats-py watch sometimes ended before delivering the keys just written.)"""
        values = await self.get_many(await self.keys_matching(f"{prefix}.>"))
        return {key: value for key, (value, _) in values.items() if value is not None}

    async def keys_matching(self, pattern: str) -> list[str]:
        """Keys matching the subject pattern `pattern` (`*`, `>`), deleted ones included
        until the bucket forgets them."""
        keys: list[str] = []
        while True:
            request = {"subjects_filter": f"{self._subject}{pattern}", "offset": len(keys)}
            page, total = await (await self._publisher.ask(
                self._info, json.dumps(request).encode(), _subjects, self._timeout))
            keys += [subject[len(self._subject):] for subject in page]
            if not page or len(keys) >= total:
                break
        return keys

    async def _ask_last(self, key: str) -> asyncio.Future[tuple[bytes | None, int]]:
        request = json.dumps({"last_by_subj": self._subject + key}).encode()
        return await self._publisher.ask(self._get, request, _stored, self._timeout)

    async def _write(self, key: str, value: bytes, headers: dict[str, str] | None) -> int:
        try:
            ack = await self._publisher.publish(self._subject + key, value,
                                                timeout=self._timeout, headers=headers)
        except PublishError as error:
            if error.err_code == WRONG_LAST_SEQUENCE:
                raise KeyWrongLastSequenceError(description=str(error)) from error
            raise
        return ack.seq


def _stored(answer: Msg) -> tuple[bytes | None, int]:
    """Value and revision from a STREAM.MSG.GET answer."""
    reply = json.loads(answer.data)
    error = reply.get("error")
    if error is not None:
        if error.get("err_code") == NO_MESSAGE:  # no such key (a missing bucket is not)
            return None, 0
        raise BusError(f"JetStream refused the read: {error.get('description')}",
                       error.get("err_code"))
    message = reply["message"]
    if _removed(base64.b64decode(message.get("hdrs") or "")):
        return None, 0
    # An empty value reads as None, as with nats-py's `get`.
    return base64.b64decode(message.get("data") or "") or None, int(message["seq"])


def _purged(answer: Msg) -> int:
    """How many messages a STREAM.PURGE removed."""
    reply = json.loads(answer.data)
    error = reply.get("error")
    if error is not None:
        raise BusError(f"JetStream refused the purge: {error.get('description')}",
                       error.get("err_code"))
    return int(reply.get("purged") or 0)


def _subjects(answer: Msg) -> tuple[list[str], int]:
    """One page of a STREAM.INFO answer's subjects, and how many there are in all."""
    reply = json.loads(answer.data)
    error = reply.get("error")
    if error is not None:
        raise BusError(f"JetStream refused the listing: {error.get('description')}",
                       error.get("err_code"))
    subjects = list((reply.get("state") or {}).get("subjects") or {})
    return subjects, int(reply.get("total") or len(subjects))


def _removed(headers: bytes) -> bool:
    """Whether a stored message's headers mark its key deleted or purged (by us, or by
    the server's TTL markers since nats-server 2.11)."""
    for line in headers.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        if (name == "kv-operation" and value in ("DEL", "PURGE")) or (
                name == "nats-marker-reason" and value in ("MaxAge", "Purge", "Remove")):
            return True
    return False


async def modify(kv: Bucket, key: str,
                 change: Callable[[bytes | None], bytes | Awaitable[bytes | None] | None],
                 attempts: int = 20,
                 known: tuple[bytes | None, int] | None = None) -> tuple[bytes | None, int]:
    """Read-modify-write under compare-and-set; `change` returning None writes nothing.

    Several gateway instances may update the same key at once: a lost race re-reads
    and re-applies the change instead of overwriting the other writer's update.
    `known` is a value and revision the caller believes current (e.g. what it wrote
    last; `(None, 0)`: absent), used instead of the first read; if that is not so, the
    compare-and-set fails and the key is read as usual. Returns the value now stored
    and its revision.
    """
    for _ in range(attempts):
        guessed = known is not None
        if known is not None:
            (current, revision), known = known, None
        else:
            current, revision = await kv.get(key)
        result = change(current)
        new = await result if not isinstance(result, bytes | None) else result
        if new is None:
            return current, revision
        try:
            if revision or guessed:
                # A guessed absence is checked by the server like a revision (0: none);
                # `create` would read the key back first when it exists.
                revision = await kv.update(key, new, last=revision)
            else:
                revision = await kv.create(key, new)  # also replaces a deleted key
            return new, revision
        except KeyWrongLastSequenceError:
            continue
    raise RuntimeError(f"could not update {key} after {attempts} concurrent attempts")


async def wait_all(pending: Sequence[Awaitable[object]]) -> None:
    """Await requests already in flight (e.g. from `Bucket.send_put`), every one of them,
    then raise the first failure, in order: no task needed to have them in flight
    together, unlike `write_all`."""
    failure: BaseException | None = None
    for one in pending:
        try:
            await one
        except Exception as error:
            failure = failure or error
    if failure is not None:
        raise failure


async def write_all(*writes: Awaitable[object]) -> None:
    """Independent writes at once: nats-py sends what is published in one turn of the
    event loop together, so they cost one round trip instead of one each. Waits for all
    of them (none is left running) and raises the first failure, in argument order."""
    if len(writes) == 1:  # nothing to overlap: no task for it
        await writes[0]
        return
    results = await asyncio.gather(*writes, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
