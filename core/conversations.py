"""Conversations: which of our numbers a customer last texted, per extension and tenant.

When an extension owns several numbers, its reply must leave from the number the
customer wrote to (FS PBX sends from an arbitrary one). Kept in a KV bucket, so every
instance and a restart see it; one small key per (tenant, extension, customer).
"""

from __future__ import annotations

import asyncio
import json
import re

from nats.js.kv import KeyValue

from pbxsms.bus import kv as kvs
from pbxsms.bus.publish import Published, Publisher
from pbxsms.core.events import utcnow

CONVERSATIONS_BUCKET = "sms_conversations"

_PLAIN = re.compile(r"[A-Za-z0-9_-]")
_ALL_PLAIN = re.compile(r"[A-Za-z0-9_-]+")


def _token(text: str | None) -> str:
    """`text` as one KV key token: safe characters kept, the rest escaped as `=XX`."""
    if not text:
        return "="
    if _ALL_PLAIN.fullmatch(text):  # the usual extension and number: nothing to escape
        return text
    return "".join(c if _PLAIN.fullmatch(c) else "".join(f"={b:02X}" for b in c.encode())
                   for c in text)


def conversation_key(domain: str | None, extension: str, customer: str) -> str:
    return f"{_token(domain)}.{_token(extension)}.{_token(customer.lstrip('+'))}"


class Conversations:
    """Read and record the number of each (tenant, extension, customer) conversation."""

    def __init__(self, kv: KeyValue, publisher: Publisher, timeout: float = 5.0) -> None:
        self.kv = kv
        self._publisher = publisher
        self._timeout = timeout

    async def remember(self, domain: str | None, extension: str, customer: str,
                       number: str) -> asyncio.Future[Published]:
        """Start writing the conversation's number; the future settles with the write.

        In flight, so that the caller's own publish shares its round trip.
        """
        value = json.dumps({"number": number, "at": utcnow().isoformat()})
        key = conversation_key(domain, extension, customer)
        return await self._publisher.send(f"$KV.{CONVERSATIONS_BUCKET}.{key}", value.encode(),
                                          timeout=self._timeout)

    async def number_for(self, domain: str | None, extension: str, customer: str) -> str | None:
        """Our number the customer last texted this extension, if any."""
        value, _ = await kvs.read(self.kv, conversation_key(domain, extension, customer))
        if value is None:
            return None
        try:
            number = json.loads(value).get("number")
        except (ValueError, AttributeError):
            return None
        return number if isinstance(number, str) else None
