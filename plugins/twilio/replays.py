"""Webhooks already stored, so that a replay of one is refused.

Twilio's webhooks carry no timestamp, and a captured request keeps a valid signature
forever: a replay is recognised only by what it is about (the message SID, and for a
status callback its status). A key is written only after the event is stored, so a
first delivery that could not be stored is never refused when it comes again; two
copies racing past the check meet JetStream's duplicate window, which stores one.
"""

from __future__ import annotations

import asyncio

from pbxsms.core.plugin_api import Bucket, Runtime

BUCKET = "twilio_webhooks"
# How long a webhook is remembered: beyond JetStream's duplicate window (24 h by
# default), a replay this old is still refused.
MEMORY = 90 * 86400.0


class Unavailable(Exception):
    """Whether a webhook was seen cannot be known now (the message bus is down)."""


class Replays:
    """The webhooks of one gateway that were stored (a JetStream KV bucket)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._bucket: Bucket | None = None
        self._lock = asyncio.Lock()

    async def seen(self, key: str) -> bool:
        """Whether `key` was stored; Unavailable when that cannot be known now."""
        try:
            value, _ = await (await self._open()).get(key)
        except Exception as error:  # any bus failure: not knowing is no "no"
            raise Unavailable(f"{type(error).__name__}: {error}") from error
        return value is not None

    async def remember(self, key: str) -> None:
        await (await self._open()).put(key, b"1")

    async def _open(self) -> Bucket:
        async with self._lock:
            if self._bucket is None:
                self._bucket = await self.runtime.bucket(BUCKET, ttl=MEMORY)
            return self._bucket


def inbound_key(sid: str) -> str:
    return f"sms.{sid}"


def status_key(sid: str, status: str) -> str:
    return f"status.{sid}.{status}"
