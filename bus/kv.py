"""JetStream key-value buckets: created idempotently, updated with optimistic concurrency."""

from __future__ import annotations

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
                 attempts: int = 20) -> bytes | None:
    """Read-modify-write under compare-and-set; `change` returning None writes nothing.

    Several gateway instances may update the same key at once: a lost race re-reads
    and re-applies the change instead of overwriting the other writer's update.
    """
    for _ in range(attempts):
        current, revision = await read(kv, key)
        result = change(current)
        new = await result if not isinstance(result, bytes | None) else result
        if new is None:
            return current
        try:
            if revision:
                await kv.update(key, new, last=revision)
            else:
                await kv.create(key, new)
            return new
        except KeyWrongLastSequenceError:
            continue
    raise RuntimeError(f"could not update {key} after {attempts} concurrent attempts")
