"""JetStream key-value buckets: created idempotently, updated with optimistic concurrency."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

log = logging.getLogger("pbxsms.bus.kv")


async def ensure_kv(js: JetStreamContext, bucket: str, ttl: float | None = None,
                    replicas: int = 1, history: int = 1) -> KeyValue:
    """The bucket, created when missing (file storage, so it survives restarts)."""
    try:
        return await js.create_key_value(KeyValueConfig(
            bucket=bucket, ttl=ttl, replicas=replicas, history=history,
            storage=StorageType.FILE))
    except Exception as error:
        # Exists with other settings (e.g. created by an older version): use it as is.
        log.debug("bucket %s exists (%s); using it", bucket, error)
        return await js.key_value(bucket)


async def read(kv: KeyValue, key: str) -> tuple[bytes | None, int]:
    """Value and revision; (None, 0) when absent or deleted."""
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:  # includes deleted keys
        return None, 0
    return entry.value, entry.revision or 0


async def entries_under(kv: KeyValue, prefix: str) -> dict[str, bytes]:
    """Every live key under `prefix.` with its value (filtered by the server, not here)."""
    watcher = await kv.watch(f"{prefix}.>", ignore_deletes=True)
    found: dict[str, bytes] = {}
    try:
        while (entry := await watcher.updates(timeout=10.0)  # type: ignore[no-untyped-call]
               ) is not None:
            found[entry.key] = entry.value or b""
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
    return found


async def modify(kv: KeyValue, key: str,
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
            current, revision = await read(kv, key)
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


async def write_all(*writes: Awaitable[object]) -> None:
    """Independent writes at once: nats-py sends what is published in one turn of the
    event loop together, so they cost one round trip instead of one each. Waits for all
    of them (none is left running) and raises the first failure, in argument order."""
    results = await asyncio.gather(*writes, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
