"""Conversations: which of our numbers a customer last texted, per extension and tenant.

When an extension owns several numbers, its reply must leave from the number the
customer wrote to (FS PBX sends from an arbitrary one). Kept in a KV bucket, so every
instance and a restart see it; one small key per (tenant, extension, customer).
"""

from __future__ import annotations

import json
import re

from nats.js.kv import KeyValue

from pbxsms.bus import kv as kvs
from pbxsms.core.events import utcnow

CONVERSATIONS_BUCKET = "sms_conversations"

_PLAIN = re.compile(r"[A-Za-z0-9_-]")


def _token(text: str | None) -> str:
    """`text` as one KV key token: safe characters kept, the rest escaped as `=XX`."""
    if not text:
        return "="
    return "".join(c if _PLAIN.fullmatch(c) else "".join(f"={b:02X}" for b in c.encode())
                   for c in text)


def conversation_key(domain: str | None, extension: str, customer: str) -> str:
    return f"{_token(domain)}.{_token(extension)}.{_token(customer.lstrip('+'))}"


class Conversations:
    """Read and record the number of each (tenant, extension, customer) conversation."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def remember(self, domain: str | None, extension: str, customer: str,
                       number: str) -> None:
        value = json.dumps({"number": number, "at": utcnow().isoformat()})
        await self.kv.put(conversation_key(domain, extension, customer), value.encode())

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
