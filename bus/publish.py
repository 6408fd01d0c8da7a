"""Publishing: one way, deduplicated by `Nats-Msg-Id`, returning only after the PubAck.

Every event and KV write of the gateway goes through `Publisher`, and so do KV reads
(`bus.kv.Bucket`). It keeps one reply subscription for all answers and a table of the
requests waiting for theirs, instead of nats-py's per-request machinery (an inbox token,
a future with callbacks and `wait_for`, the PubAck parsed into a dataclass): a request
is one PUB on the connection and one table entry. `send` and `ask` put a request in
flight and return its future, so a caller can have several in flight and pay one write
to the socket for all of them. `ask_all` takes an answer that comes in several messages
(a batched direct get).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from pbxsms.bus.direct import subscribe_direct

MSG_ID = "Nats-Msg-Id"


class BusError(Exception):
    """The bus did not answer a request as asked: no answer in time, or a refusal."""

    def __init__(self, message: str, err_code: int | None = None) -> None:
        super().__init__(message)
        self.err_code = err_code  # JetStream's error code, when it refused


class PublishError(BusError):
    """The event is not known to be stored; callers answer 503 or retry later."""


T = TypeVar("T")

# What a reader returns while the answer goes on (more messages to the same reply subject).
MORE: Any = object()


@dataclass(frozen=True, slots=True)
class Published:
    """Where the event landed, and whether JetStream had it already."""

    seq: int
    duplicate: bool


# A request waiting for its answer: the future, how to read the answer, when and after
# how long it expires, and the error that says so.
_Waiting = tuple["asyncio.Future[Any]", Callable[[Msg], Any], float, float, type[BusError]]

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
            # Answers resolve their futures as they are read (bus/direct.py).
            self._sub = await subscribe_direct(self._nc, self._prefix + "*", self._on_reply)

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
        if msg_id is not None:
            headers = {MSG_ID: msg_id, **headers} if headers else {MSG_ID: msg_id}
        return await self._request(subject, payload, headers, _pub_ack, timeout,
                                   PublishError)

    async def ask(self, subject: str, payload: bytes, read: Callable[[Msg], T],
                  timeout: float = 5.0) -> asyncio.Future[T]:
        """Put a request (e.g. a JetStream API call) in flight; its future gives
        `read(answer)`, or BusError when none came within `timeout` or nobody listens."""
        return await self._request(subject, payload, None, read, timeout, BusError)

    async def ask_all(self, subject: str, payload: bytes, read: Callable[[list[Msg]], T],
                      timeout: float = 5.0) -> asyncio.Future[T]:
        """Like `ask`, for an answer in several messages that ends with one carrying a
        `Status` header (e.g. 204 after a batch, 404 for none): its future gives
        `read(all of them)`, that one last."""
        return await self._request(subject, payload, None, _Answers(read), timeout, BusError)

    async def _request(self, subject: str, payload: bytes, headers: dict[str, str] | None,
                       read: Callable[[Msg], T], timeout: float,
                       error: type[BusError]) -> asyncio.Future[T]:
        if self._sub is None:
            raise error("the publisher is not started")
        token = str(next(self._tokens))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._waiting[token] = (future, read, loop.time() + timeout, timeout, error)
        if self._sweeper is None:
            self._sweeper = loop.call_later(SWEEP, self._sweep)
        try:
            await self._nc.publish(subject, payload, reply=self._prefix + token,
                                   headers=headers)
        except (NatsError, OSError) as failure:
            self._waiting.pop(token, None)
            raise error(f"{type(failure).__name__}: {failure}".rstrip(": ")) from failure
        return future

    @property
    def nc(self) -> NATS:
        """The connection, for requests answered by more than one message."""
        return self._nc

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    def _sweep(self) -> None:
        """Fail the requests whose answer is overdue; again later while any wait."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        overdue = [token for token, waiting in self._waiting.items() if waiting[2] <= now]
        for token in overdue:
            future, _, _, timeout, error = self._waiting.pop(token)
            if not future.done():
                future.set_exception(error(f"no answer from NATS within {timeout:g} s"))
        self._sweeper = loop.call_later(SWEEP, self._sweep) if self._waiting else None

    def _on_reply(self, msg: Msg) -> None:
        token = msg.subject[len(self._prefix):]
        waiting = self._waiting.pop(token, None)
        if waiting is None:  # timed out already: the caller was told
            return
        future, read, _, _, error = waiting
        if future.done():  # a caller that gave up cancelled it
            return
        try:
            if msg.headers and msg.headers.get("Status") == "503":
                raise error("nobody answers on this subject (no JetStream stream or API)")
            result = read(msg)
            if result is MORE:
                self._waiting[token] = waiting  # by its first deadline still
                return
            future.set_result(result)
        except BusError as failure:
            future.set_exception(failure)
        except (ValueError, TypeError, KeyError, AttributeError) as failure:
            future.set_exception(error(f"unreadable answer: {msg.data[:200]!r}: {failure}"))


class _Answers:
    """The messages of one answer, until the one with a `Status` header, then read."""

    def __init__(self, read: Callable[[list[Msg]], Any]) -> None:
        self.messages: list[Msg] = []
        self.read = read

    def __call__(self, msg: Msg) -> Any:
        self.messages.append(msg)
        return self.read(self.messages) if msg.headers and "Status" in msg.headers else MORE


# A PubAck as nats-server writes it (no domain, no error): read without json.loads, on
# every publish. Anything else goes through json.loads.
_PLAIN_ACK = re.compile(rb'\{"stream":"[^"\\]*","seq":([0-9]+)(,"duplicate": ?true)?\}')


def _pub_ack(msg: Msg) -> Published:
    """The PubAck in `msg`; PublishError for a refusal."""
    plain = _PLAIN_ACK.fullmatch(msg.data)
    if plain is not None:
        return Published(int(plain[1]), plain[2] is not None)
    ack = json.loads(msg.data)
    if "error" in ack:
        error = ack["error"]
        raise PublishError(f"JetStream refused it: {error.get('description')} "
                           f"(code {error.get('code')}, {error.get('err_code')})",
                           error.get("err_code"))
    return Published(int(ack["seq"]), bool(ack.get("duplicate", False)))


def batch_messages(answers: list[Msg]) -> list[Msg]:
    """The messages of a batched direct get answered through `ask_all`: all but the last
    answer, whose `Status` says how it ended (204: the batch is done, 404: nothing stored);
    BusError when the server refused the request."""
    *found, end = answers
    headers = end.headers or {}
    status = headers.get("Status")
    if status not in ("204", "404"):
        raise BusError(f"JetStream refused the direct get: {status} "
                       f"{headers.get('Description', '')}".rstrip())
    return found
