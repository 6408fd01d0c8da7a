"""Conversations: which of our numbers a customer last texted, per extension and tenant.

When an extension owns several numbers, its reply must leave from the number the
customer wrote to (FS PBX sends from an arbitrary one). Kept in a KV bucket, so every
instance and a restart see it; one small key per (tenant, extension, customer).

Most texts continue a conversation with the number it already has, so the write is
skipped when the bucket already holds that number. What "already holds" rests on:
each instance remembers the numbers it wrote (or saw written) with their revision, and
watches the bucket for new revisions from anywhere (other instances, the CLI), which
replace or forget what it remembered. After a reconnect the watch may have missed
updates: the memory is dropped and the watch started again, and until it runs every
text is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from pbxsms.bus.kv import Bucket
from pbxsms.bus.publish import Published
from pbxsms.core.model.events import utcnow

log = logging.getLogger("pbxsms.conversations")

CONVERSATIONS_BUCKET = "sms_conversations"
_SUBJECT = f"$KV.{CONVERSATIONS_BUCKET}."

# Conversations remembered per instance (about 200 bytes each); the oldest go first.
REMEMBERED = 20_000
# After a reconnect (or a failed start), the watch is started again after this delay.
REWATCH_DELAY = 1.0

_PLAIN = re.compile(r"[A-Za-z0-9_-]")
_ALL_PLAIN = re.compile(r"[A-Za-z0-9_-]+")


def key_token(text: str | None) -> str:
    """`text` as one KV key token: safe characters kept, the rest escaped as `=XX`."""
    if not text:
        return "="
    # The usual extension and number: nothing to escape (letters and digits need no regex).
    if (text.isascii() and text.isalnum()) or _ALL_PLAIN.fullmatch(text):
        return text
    return _escaped(text)


@functools.lru_cache(maxsize=1024)  # tenants' domains, on every text
def _escaped(text: str) -> str:
    return "".join(c if _PLAIN.fullmatch(c) else "".join(f"={b:02X}" for b in c.encode())
                   for c in text)


def conversation_key(domain: str | None, extension: str, customer: str) -> str:
    return f"{key_token(domain)}.{key_token(extension)}.{key_token(customer.lstrip('+'))}"


class Conversations:
    """Read and record the number of each (tenant, extension, customer) conversation."""

    def __init__(self, nc: NATS, js: JetStreamContext, bucket: Bucket) -> None:
        self.bucket = bucket
        self._nc = nc
        self._js = js
        # key -> (number stored, or None while unknown or being written; its revision)
        self._known: dict[str, tuple[str | None, int]] = {}
        self._watch: JetStreamContext.PushSubscription | None = None  # while it runs
        self._reconnects = -1  # the connection's reconnect count the watch started at
        self._restart: asyncio.Task[None] | None = None

    # -- the watch ----------------------------------------------------------------

    async def start(self) -> None:
        """Watch the bucket for new revisions; skipping writes is trusted from then on."""
        reconnects = self._nc.stats["reconnects"]
        try:
            self._watch = await self._js.subscribe(
                _SUBJECT + ">", stream=f"KV_{CONVERSATIONS_BUCKET}", ordered_consumer=True,
                deliver_policy=api.DeliverPolicy.NEW, cb=self._on_update)
        except Exception as error:  # every text is written until the next try
            log.warning("cannot watch %s (%s); conversations are written on every text",
                        CONVERSATIONS_BUCKET, error)
            return
        self._known.clear()
        self._reconnects = reconnects

    async def stop(self) -> None:
        if self._restart is not None:
            self._restart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._restart
        await self._stop_watch()

    def _trusted(self) -> bool:
        """Whether the watch has seen every revision since what is remembered."""
        if self._watch is not None and self._nc.stats["reconnects"] == self._reconnects:
            return True
        self._known.clear()
        if self._restart is None or self._restart.done():
            self._restart = asyncio.get_running_loop().create_task(self._rewatch())
        return False

    async def _rewatch(self) -> None:
        await self._stop_watch()
        await asyncio.sleep(REWATCH_DELAY)  # at most one try per delay, whatever the traffic
        if self._nc.is_connected:
            await self.start()

    async def _stop_watch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            with contextlib.suppress(Exception):
                await watch.unsubscribe()

    async def _on_update(self, msg: Msg) -> None:
        key = msg.subject[len(_SUBJECT):]
        if key not in self._known:
            return
        revision = msg.metadata.sequence.stream
        if revision <= self._known[key][1]:
            return
        deleted = (msg.headers or {}).get("KV-Operation") in ("DEL", "PURGE")
        self._known[key] = (None if deleted else _number(msg.data), revision)

    def _wrote(self, key: str, number: str, done: asyncio.Future[Published]) -> None:
        if done.cancelled() or done.exception() is not None or key not in self._known:
            return  # unknown stays unknown: the next text writes again
        revision = done.result().seq
        if revision >= self._known[key][1]:  # unless the watch saw a newer one already
            self._known[key] = (number, revision)

    # -- reading and recording ----------------------------------------------------

    def stored(self, domain: str | None, extension: str, customer: str) -> str | None:
        """The number this instance knows the bucket holds; None when it does not know."""
        return self._known.get(conversation_key(domain, extension, customer), (None, 0))[0]

    def holds(self, domain: str | None, extension: str, customer: str, number: str) -> bool:
        """Whether the bucket holds `number` for this conversation, as far as this instance
        knows: what lets `remember` skip the write, checked without a coroutine (most texts
        continue a conversation). Marks it most recently used."""
        key = conversation_key(domain, extension, customer)
        known = self._known.get(key)
        if known is None or known[0] != number or not self._trusted():
            return False
        del self._known[key]  # most recently used last
        self._known[key] = known
        return True

    async def remember(self, domain: str | None, extension: str, customer: str,
                       number: str) -> asyncio.Future[Published] | None:
        """Start writing the conversation's number; the future settles with the write.

        None when the bucket holds that number already. In flight, so that the caller's
        own publish shares its round trip.
        """
        key = conversation_key(domain, extension, customer)
        known = self._known.pop(key, None)
        if known is not None and known[0] == number and self._trusted():
            self._known[key] = known  # most recently used last
            return None
        self._known[key] = (None, known[1] if known else 0)  # unknown until written
        if len(self._known) > REMEMBERED:
            del self._known[next(iter(self._known))]
        value = json.dumps({"number": number, "at": utcnow().isoformat()})
        future = await self.bucket.send_put(key, value.encode())
        future.add_done_callback(functools.partial(self._wrote, key, number))
        return future

    async def number_for(self, domain: str | None, extension: str, customer: str) -> str | None:
        """Our number the customer last texted this extension, if any."""
        value, _ = await self.bucket.get(conversation_key(domain, extension, customer))
        return None if value is None else _number(value)


def _number(value: bytes) -> str | None:
    try:
        number = json.loads(value).get("number")
    except (ValueError, AttributeError):
        return None
    return number if isinstance(number, str) else None
