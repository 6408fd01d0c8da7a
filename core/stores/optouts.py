"""Opt-outs: whether a customer may be texted from one of our numbers, in a KV bucket.

One key per (our number, customer). The latest word wins by the time it was said: a STOP
and a START handled out of order leave the later one standing. The record also names the
one message allowed through despite an opt-out: the confirmation of that STOP.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from pbxsms.bus import kv as kvs
from pbxsms.bus.kv import Bucket
from pbxsms.core.stores.conversations import key_token

OPTOUTS_BUCKET = "sms_optouts"


class OptOut(BaseModel):
    """The current word of one customer about one of our numbers."""

    number: str
    customer: str
    opted_out: bool
    source: Literal["keyword", "carrier"]
    keyword: str | None = None
    at: datetime
    confirmation_id: str | None = None  # our id of the reply confirming this word


def optout_key(number: str, customer: str) -> str:
    return f"{key_token(number.lstrip('+'))}.{key_token(customer.lstrip('+'))}"


class OptOutStore:
    """Read and record opt-outs."""

    def __init__(self, bucket: Bucket) -> None:
        self.bucket = bucket

    async def get(self, number: str, customer: str) -> OptOut | None:
        value, _ = await self.bucket.get(optout_key(number, customer))
        return OptOut.model_validate_json(value) if value else None

    async def record(self, word: OptOut) -> bool:
        """Store `word` unless a later one is stored; whether it is now the current one."""

        def change(current: bytes | None) -> bytes | None:
            if current is not None and OptOut.model_validate_json(current).at > word.at:
                return None
            return word.model_dump_json().encode()

        value, _ = await kvs.modify(self.bucket, optout_key(word.number, word.customer),
                                    change)
        return value is not None and OptOut.model_validate_json(value) == word
