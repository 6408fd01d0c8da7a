"""JetStream key-value buckets: created idempotently, updated with optimistic concurrency."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError
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


async def read_many(nc: NATS, kv: KeyValue, keys: Sequence[str], timeout: float = 5.0
                    ) -> dict[str, tuple[bytes | None, int]]:
    """`read` of many keys in one pipelined round: every request goes out before any
    answer is awaited, on one reply subscription, without nats-py's per-request future,
    timer and token (a third of the CPU of `read` per key). Absent or deleted keys are
    (None, 0); TimeoutError when not every answer came within `timeout`."""
    if not keys:
        return {}
    # The bucket's stream, key prefix and API prefix: nats-py has no public accessors.
    api = f"{kv._js._prefix}.STREAM.MSG.GET.{kv._stream}"
    loop = asyncio.get_running_loop()
    inbox = nc.new_inbox()
    answers: dict[str, bytes] = {}
    complete = loop.create_future()

    async def answered(msg: Msg) -> None:
        answers[msg.subject] = msg.data
        if len(answers) >= len(keys) and not complete.done():
            complete.set_result(None)

    sub = await nc.subscribe(f"{inbox}.*", cb=answered)
    try:
        for index, key in enumerate(keys):
            request = json.dumps({"last_by_subj": kv._pre + key}).encode()
            await nc.publish(api, request, reply=f"{inbox}.{index}")
        await asyncio.wait_for(complete, timeout)
    finally:
        await sub.unsubscribe()
    return {key: _stored_value(answers[f"{inbox}.{index}"])
            for index, key in enumerate(keys)}


def _stored_value(answer: bytes) -> tuple[bytes | None, int]:
    """Value and revision from a STREAM.MSG.GET answer, as `read` gives them."""
    reply = json.loads(answer)
    error = reply.get("error")
    if error is not None:
        if error.get("code") == 404:  # no such key (or bucket), as KeyNotFoundError
            return None, 0
        raise APIError(**error)
    message = reply["message"]
    headers = base64.b64decode(message.get("hdrs") or "")
    if _DELETED.search(headers):
        return None, 0
    # An empty value is None, as nats-py's `get` gives it.
    return base64.b64decode(message.get("data") or "") or None, int(message["seq"])


_DELETED = re.compile(rb"\r\nKV-Operation:\s*(DEL|PURGE)\r\n")
