"""Conversations as the app sees them: (organisation, extension, customer) → our number.

The app's reply names only the extension and the customer. An extension may own several
numbers, so the reply must leave from the number this customer last texted (FS PBX sends
from an arbitrary one). Each push records that number here; the reply webhook reads it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING

from nats.js.kv import KeyValue
from pydantic import BaseModel, ValidationError

from pbxsms.bus import kv as kvs

if TYPE_CHECKING:
    from pbxsms.core.runtime import Runtime

THREADS_BUCKET = "sms_app_threads"


class Thread(BaseModel):
    """The latest inbound message of a conversation that reached the app."""

    number: str
    provider: str
    message_id: str
    domain: str | None = None
    received_at: datetime


class Threads:
    """The KV bucket of conversations, kept as long as events are."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            bus = self.runtime.config.file.bus
            self._kv = await kvs.ensure_kv(self.runtime.js, THREADS_BUCKET, ttl=bus.max_age,
                                           replicas=bus.replicas)
        return self._kv

    async def remember(self, org: str, extension: str, customer: str, thread: Thread) -> None:
        """Record `thread` unless a newer message of the conversation is already there
        (pushes of a burst finish in any order)."""

        def change(current: bytes | None) -> bytes | None:
            if current is not None:
                try:
                    known = Thread.model_validate_json(current)
                except ValidationError:
                    known = None
                if known is not None and known.received_at > thread.received_at:
                    return None
                if known == thread:
                    return None
            return thread.model_dump_json().encode()

        await kvs.modify(await self._bucket(), thread_key(org, extension, customer), change)

    async def find(self, org: str, extension: str, customer: str) -> Thread | None:
        value, _ = await kvs.read(await self._bucket(), thread_key(org, extension, customer))
        if value is None:
            return None
        try:
            return Thread.model_validate_json(value)
        except ValidationError:
            return None


def thread_key(org: str, extension: str, customer: str) -> str:
    """A hash: organisation ids and extensions may hold characters KV keys do not allow."""
    return hashlib.sha256(f"{org}\n{extension}\n{customer}".encode()).hexdigest()[:40]
