"""The delivery ledger: which deliveries of a message are settled, per channel and recipient.

A channel consumer may see the same message many times: a retry, a redelivery after a
crash, an operator's replay, a second instance. The ledger remembers each settled
delivery, so none of these reaches a person twice; only a delivery whose record was lost
in a crash may repeat. Its entries live in the message's status record (`settled`,
core/stores/status.py): the read before a delivery is the record's read, and an entry is
written with the channel's status event in the record's one compare-and-set
(`report(..., settled=...)`, core/inbound/delivery.py).

Versions before kept the ledger in a bucket of its own (`sms_deliveries`). While that
bucket holds entries, a message received before this process started is looked up there
too when its record has no entry (it was delivered by the old version); the bucket is
deleted at a start that finds it empty (its entries expire after `[bus] max_age`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from pbxsms.bus.kv import Bucket
from pbxsms.core.model.events import utcnow
from pbxsms.core.stores.status import Settled

if TYPE_CHECKING:
    from pbxsms.core.serve.runtime import Runtime

log = logging.getLogger("pbxsms.deliveries")

# The bucket of older versions' ledger.
LEGACY_BUCKET = "sms_deliveries"
# How long a settled delivery's record write is retried (see `patiently`).
PATIENCE = 30.0

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_=-]{1,64}$")

T = TypeVar("T")


class LegacyLedger:
    """The older versions' ledger bucket, read for messages received before `since`."""

    def __init__(self, bucket: Bucket, since: datetime) -> None:
        self.bucket = bucket
        self.since = since

    @classmethod
    async def open(cls, js: JetStreamContext,
                   bucket: Callable[[], Awaitable[Bucket]]) -> LegacyLedger | None:
        """The old bucket while it holds entries; None when there is none (deleted here
        once its entries have all expired)."""
        stream = f"KV_{LEGACY_BUCKET}"
        try:
            info = await js.stream_info(stream)
        except NotFoundError:
            return None
        if not info.state.messages:
            await js.delete_stream(stream)
            log.info("bucket %s deleted: the delivery ledger is in the status records now, "
                     "and its last entries have expired", LEGACY_BUCKET)
            return None
        log.info("bucket %s still holds %d entries: read for the messages received before "
                 "this start", LEGACY_BUCKET, info.state.messages)
        return cls(await bucket(), utcnow())


class Ledger:
    """Settled deliveries, per channel, message and recipient (in the status records)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def get(self, channel: str, message_id: str, recipient: str | None = None,
                  received_at: datetime | None = None) -> Settled | None:
        """The settled delivery to `recipient` (None: the channel's one), if any.
        `received_at`: when the message came, for the older versions' ledger (see the
        module's doc; None: look there too when it is kept)."""
        return (await self.get_many(channel, message_id, [recipient], received_at))[0]

    async def get_many(self, channel: str, message_id: str,
                       recipients: Sequence[str | None],
                       received_at: datetime | None = None) -> list[Settled | None]:
        """`get` for each recipient: one read of the message's record."""
        keys = [ledger_key(channel, message_id, recipient) for recipient in recipients]
        settled = await self.runtime.status.settled(message_id)
        found = [settled.get(key) for key in keys]
        legacy = self.runtime.legacy_ledger
        missing = [key for key, entry in zip(keys, found, strict=True) if entry is None]
        if missing and legacy is not None and (received_at is None
                                               or received_at < legacy.since):
            old = await legacy.bucket.get_many(missing)
            found = [entry if entry is not None else _parsed(old.get(key, (None, 0))[0])
                     for key, entry in zip(keys, found, strict=True)]
        return found

    async def settle(self, channel: str, message_id: str, settled: Settled,
                     recipient: str | None = None, patience: float = PATIENCE) -> None:
        """Record a settled delivery on its own, retrying for up to `patience` seconds
        (a delivery in parts: each part but the last; the last goes with the status)."""
        entries = self.entry(channel, message_id, settled, recipient)
        await patiently(lambda: self.runtime.status.settle(message_id, entries), patience,
                        channel, message_id)

    @staticmethod
    def entry(channel: str, message_id: str, settled: Settled,
              recipient: str | None = None) -> dict[str, Settled]:
        """`settled` as the ledger entry to store (e.g. with `report`)."""
        return {ledger_key(channel, message_id, recipient): settled}

    async def forget(self, message_id: str) -> int:
        """Forget every settled delivery of a message (an operator's forced redelivery
        reaches everyone again); how many were forgotten."""
        forgotten = await self.runtime.status.forget(message_id)
        legacy = self.runtime.legacy_ledger
        if legacy is not None:
            bucket, part = legacy.bucket, _key_part(message_id)
            keys = [*await bucket.keys_matching(f"*.{part}"),
                    *await bucket.keys_matching(f"*.{part}.*")]
            stored = await bucket.get_many(keys)
            for key, (value, _) in stored.items():
                if value is not None:
                    await bucket.delete(key)
                    forgotten += 1
        return forgotten


async def patiently(write: Callable[[], Awaitable[T]], patience: float, channel: str,
                    message_id: str) -> T:
    """`write()`, retried for up to `patience` seconds.

    A lost ledger entry is the one way a person could be reached twice (the delivery
    would be retried), so its write outlasts a bus hiccup such as a cluster leader
    election; the consumer keeps the message ours meanwhile (`in_progress`).
    """
    deadline = time.monotonic() + patience
    pause = 0.2
    while True:
        try:
            return await write()
        except Exception as error:
            if time.monotonic() + pause >= deadline:
                raise
            log.warning("%s: ledger write for %s failed (%s); retrying", channel,
                        message_id, error, extra={"msg_id": message_id})
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)


def _parsed(value: bytes | None) -> Settled | None:
    return Settled.model_validate_json(value) if value else None


def ledger_key(channel: str, message_id: str, recipient: str | None = None) -> str:
    """`<channel>.<id>[.<recipient hash>]`: recipients (addresses) are hashed, so that
    they need not appear in keys (the older versions' bucket listed them)."""
    parts = [channel, _key_part(message_id)]
    if recipient is not None:
        parts.append(_digest(recipient.strip().lower()))
    return ".".join(parts)


def _key_part(value: str) -> str:
    return value if _PLAIN_KEY.match(value) else _digest(value)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:40]
