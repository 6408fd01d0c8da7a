"""Publishing: one way, deduplicated by `Nats-Msg-Id`, returning only after the PubAck.

Every event and KV write of the gateway goes through `Publisher`. It keeps one reply
subscription for all PubAcks and a table of the publishes waiting for theirs, instead of
nats-py's per-request machinery (an inbox token, a future with callbacks and `wait_for`,
the PubAck parsed into a dataclass): a publish is one PUB on the connection and one
table entry. `send` puts a publish in flight and returns its future, so a caller can
have several in flight and pay one write to the socket for all of them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

MSG_ID = "Nats-Msg-Id"


class PublishError(Exception):
    """The event is not known to be stored; callers answer 503 or retry later."""


@dataclass(frozen=True, slots=True)
class Published:
    """Where the event landed, and whether JetStream had it already."""

    seq: int
    duplicate: bool


# A publish waiting for its PubAck: the future, and when and after how long it expires.
_Waiting = tuple["asyncio.Future[Published]", float, float]

# Expiry is checked this often: a timeout fires up to this much late, and a publish
# needs no timer of its own.
SWEEP = 0.1


class Publisher:
    """JetStream publishes over one NATS connection, any number in flight at once."""

    def __init__(self, nc: NATS) -> None:
        self._nc = nc
        self._prefix = ""
        self._tokens = itertools.count()
        self._waiting: dict[str, _Waiting] = {}
        self._sub: Subscription | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        """Subscribe to the PubAcks (nats-py renews the subscription after a reconnect)."""
        if self._sub is None:
            self._prefix = self._nc.new_inbox() + "."
            self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._on_reply)

    async def publish(self, subject: str, payload: bytes, msg_id: str | None = None,
                      timeout: float = 5.0,
                      headers: dict[str, str] | None = None) -> Published:
        """Store `payload` on `subject` (once per `msg_id`); PublishError when not stored."""
        return await (await self.send(subject, payload, msg_id, timeout, headers))

    async def send(self, subject: str, payload: bytes, msg_id: str | None = None,
                   timeout: float = 5.0,
                   headers: dict[str, str] | None = None) -> asyncio.Future[Published]:
        """Put a publish in flight; its future gives the PubAck, or PublishError when the
        event is not stored, the server refuses it or no PubAck came within `timeout`."""
        if self._sub is None:
            raise PublishError("the publisher is not started")
        if msg_id is not None:
            headers = {MSG_ID: msg_id, **headers} if headers else {MSG_ID: msg_id}
        token = str(next(self._tokens))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Published] = loop.create_future()
        self._waiting[token] = (future, loop.time() + timeout, timeout)
        if self._sweeper is None:
            self._sweeper = loop.call_later(SWEEP, self._sweep)
        try:
            await self._nc.publish(subject, payload, reply=self._prefix + token,
                                   headers=headers)
        except (NatsError, OSError) as error:
            self._waiting.pop(token, None)
            raise PublishError(f"{type(error).__name__}: {error}".rstrip(": ")) from error
        return future

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    def _sweep(self) -> None:
        """Fail the publishes whose PubAck is overdue; again later while any wait."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        overdue = [token for token, (_, deadline, _) in self._waiting.items()
                   if deadline <= now]
        for token in overdue:
            future, _, timeout = self._waiting.pop(token)
            if not future.done():
                future.set_exception(PublishError(f"no PubAck within {timeout:g} s"))
        self._sweeper = loop.call_later(SWEEP, self._sweep) if self._waiting else None

    async def _on_reply(self, msg: Msg) -> None:
        waiting = self._waiting.pop(msg.subject[len(self._prefix):], None)
        if waiting is None:  # timed out already: the caller was told
            return
        future = waiting[0]
        if not future.done():  # a caller that gave up cancelled it
            try:
                future.set_result(_pub_ack(msg))
            except PublishError as error:
                future.set_exception(error)


def _pub_ack(msg: Msg) -> Published:
    """The PubAck in `msg`; PublishError for a refusal or anything that is not one."""
    if msg.headers and msg.headers.get("Status") == "503":
        raise PublishError("no JetStream stream takes this subject (no responders)")
    try:
        ack = json.loads(msg.data)
        if "error" in ack:
            error = ack["error"]
            raise PublishError(f"JetStream refused it: {error.get('description')} "
                               f"(code {error.get('code')}, {error.get('err_code')})")
        return Published(int(ack["seq"]), bool(ack.get("duplicate", False)))
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise PublishError(f"unreadable PubAck: {msg.data[:200]!r}") from error
