"""A small asyncio client of FreeSWITCH's event socket (mod_event_socket, inbound mode).

The wire protocol: every message is a block of `Name: value` lines ended by a blank line,
followed by exactly `Content-Length` bytes when that header is present. The server greets
with `auth/request`; commands end with a blank line and are answered in order
(`command/reply` with `Reply-Text`, or `api/response` with a body); subscribed events
arrive in between as `text/event-plain`, whose body is itself a header block with
URL-encoded values, optionally followed by its own `Content-Length` and body.

Command header values travel verbatim (mod_event_socket does not decode them), so they
may not contain a line break; a `sendevent` body goes by length and may contain anything
but a NUL byte (FreeSWITCH keeps event bodies as C strings).

`EslClient` keeps one authenticated connection open, subscribes to the events it was given
before anything is sent, reconnects with backoff, and hands each event to a callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

log = logging.getLogger("pbxsms.freeswitch.esl")

# FreeSWITCH refuses longer bodies (MAX_CONTENT_LENGTH in mod_event_socket.c).
MAX_CONTENT_LENGTH = 16 * 1024 * 1024


class EslError(Exception):
    """The event socket failed: not reachable, closed, or an unexpected answer."""


class EslClosed(EslError):
    """The connection is gone (or was never there)."""


class AuthRefused(EslError):
    """FreeSWITCH refused our password (`-ERR invalid`)."""


class AclRefused(EslError):
    """FreeSWITCH refused our address (`text/rude-rejection`: its ACL)."""


class CommandFailed(EslError):
    """A command was answered `-ERR ...`."""


@dataclass(frozen=True)
class Frame:
    """One message from the server: its envelope headers and body bytes."""

    headers: Mapping[str, str]
    body: bytes = b""

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def reply_text(self) -> str:
        return self.headers.get("Reply-Text", "")


@dataclass(frozen=True)
class Event:
    """A FreeSWITCH event, headers decoded; header names are matched without case."""

    headers: dict[str, str]
    body: str | None = None
    _lower: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._lower.update({name.lower(): value for name, value in self.headers.items()})

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._lower.get(name.lower(), default)

    @property
    def name(self) -> str:
        return self.get("Event-Name") or ""

    @property
    def subclass(self) -> str:
        return self.get("Event-Subclass") or ""


def encode_command(command: str, headers: Iterable[tuple[str, str]] = (),
                   body: bytes | None = None) -> bytes:
    """The bytes of one command: its line, header lines, `Content-Length` and the body.

    ValueError for what cannot travel: a line break in the command or in a header, a
    header name with `:`, a NUL byte or an oversized body.
    """
    lines = [_single_line(command, "command")]
    for name, value in headers:
        if not name or ":" in name or name.lower() == "content-length":
            raise ValueError(f"header name {name!r} cannot be sent")
        lines.append(f"{_single_line(name, 'header name')}: "
                     f"{_single_line(value, f'header {name}')}")
    if body is not None:
        if b"\0" in body:
            raise ValueError("the body contains a NUL byte, which FreeSWITCH would cut at")
        if len(body) > MAX_CONTENT_LENGTH:
            raise ValueError(f"the body has {len(body)} bytes; FreeSWITCH takes at most "
                             f"{MAX_CONTENT_LENGTH}")
        if body:
            lines.append(f"Content-Length: {len(body)}")
    data = ("\n".join(lines) + "\n\n").encode()
    return data + body if body else data


def _single_line(text: str, what: str) -> str:
    if "\n" in text or "\r" in text or "\0" in text:
        raise ValueError(f"the {what} contains a line break or NUL")
    return text


def parse_header_block(data: bytes, decode: bool) -> tuple[dict[str, str], int]:
    """Header lines up to the first blank line: (headers, offset after the blank line).

    `decode` URL-decodes values (event headers); envelope headers are plain. A repeated
    header keeps its first value.
    """
    headers: dict[str, str] = {}
    offset = 0
    while offset < len(data):
        end = data.find(b"\n", offset)
        line = data[offset:] if end < 0 else data[offset:end]
        offset = len(data) if end < 0 else end + 1
        text = line.rstrip(b"\r").decode("utf-8", errors="replace")
        if not text:
            break
        name, sep, value = text.partition(":")
        if not sep:
            raise EslError(f"malformed header line {text[:80]!r}")
        value = value.lstrip(" ")
        headers.setdefault(name.strip(), unquote(value, errors="replace") if decode else value)
    return headers, offset


def parse_event(body: bytes) -> Event:
    """A `text/event-plain` body: URL-encoded headers, then its own body by length."""
    headers, offset = parse_header_block(body, decode=True)
    length = headers.pop("Content-Length", None)
    text = None
    if length is not None:
        try:
            size = int(length)
        except ValueError as error:
            raise EslError(f"bad event Content-Length {length!r}") from error
        raw = body[offset:offset + size]
        if len(raw) != size:
            raise EslError(f"event body shorter than its Content-Length {size}")
        text = raw.decode("utf-8", errors="replace")
    return Event(headers, text)


async def read_frame(reader: asyncio.StreamReader) -> Frame:
    """The next message; EslClosed at the end of the stream."""
    block = bytearray()
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as error:
            raise EslClosed("the event socket closed the connection") from error
        except asyncio.LimitOverrunError as error:
            raise EslError("a header line longer than the read buffer") from error
        if line in (b"\n", b"\r\n"):
            if block:
                break
            continue  # stray blank lines between messages
        block += line
    headers, _ = parse_header_block(bytes(block), decode=False)
    length = headers.get("Content-Length")
    body = b""
    if length is not None:
        try:
            size = int(length)
        except ValueError as error:
            raise EslError(f"bad Content-Length {length!r}") from error
        if not 0 <= size <= MAX_CONTENT_LENGTH:
            raise EslError(f"Content-Length {size} out of range")
        try:
            body = await reader.readexactly(size)
        except asyncio.IncompleteReadError as error:
            raise EslClosed("the event socket closed the connection mid-message") from error
    return Frame(headers, body)


def subscription(events: Sequence[str]) -> str:
    """`event plain ...`: plain events first, `CUSTOM` then its subclasses (names with
    `::`), as mod_event_socket reads the list."""
    plain = [name for name in events if "::" not in name and name != "CUSTOM"]
    custom = [name for name in events if "::" in name]
    return " ".join(["event plain", *plain, *(["CUSTOM", *custom] if custom else [])])


class Connection:
    """One authenticated connection: commands answered in order, events to a callback."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 on_event: Callable[[Event], None]) -> None:
        self.reader, self.writer = reader, writer
        self.on_event = on_event
        self._replies: deque[asyncio.Future[Frame]] = deque()
        self.closed = False

    async def login(self, password: str, events: Sequence[str], timeout: float) -> None:
        """Greeting, `auth`, then the subscription; AuthRefused, AclRefused or EslError."""
        greeting = await asyncio.wait_for(read_frame(self.reader), timeout)
        if greeting.content_type == "text/rude-rejection":
            raise AclRefused("FreeSWITCH refused this address (event socket ACL)")
        if greeting.content_type != "auth/request":
            raise EslError(f"unexpected greeting {greeting.content_type!r}")
        self.writer.write(encode_command(f"auth {password}"))
        reply = await asyncio.wait_for(read_frame(self.reader), timeout)
        if reply.content_type != "command/reply":
            raise EslError(f"unexpected answer to auth: {reply.content_type!r}")
        if not reply.reply_text.startswith("+OK"):
            raise AuthRefused(f"FreeSWITCH refused the password ({reply.reply_text})")
        if events:
            self.writer.write(encode_command(subscription(events)))
            reply = await asyncio.wait_for(read_frame(self.reader), timeout)
            if not reply.reply_text.startswith("+OK"):
                raise EslError(f"event subscription refused: {reply.reply_text}")

    async def run(self) -> None:
        """Read until the connection ends; every unanswered command then fails."""
        try:
            while True:
                frame = await read_frame(self.reader)
                kind = frame.content_type
                if kind in ("command/reply", "api/response"):
                    if self._replies:
                        future = self._replies.popleft()
                        if not future.done():
                            future.set_result(frame)
                    else:
                        log.warning("an answer nobody asked for: %s", kind)
                elif kind == "text/event-plain":
                    self._dispatch(frame)
                elif kind == "text/disconnect-notice":
                    raise EslClosed("FreeSWITCH closed the event socket")
                elif kind == "text/rude-rejection":
                    raise AclRefused("FreeSWITCH refused this address (event socket ACL)")
                else:
                    log.debug("ignoring %s from the event socket", kind or "a headerless frame")
        finally:
            self.close()

    def _dispatch(self, frame: Frame) -> None:
        try:
            event = parse_event(frame.body)
        except EslError as error:
            log.warning("unreadable event: %s", error)
            return
        try:
            self.on_event(event)
        except Exception:
            log.exception("event handler failed on %s %s", event.name, event.subclass)

    async def command(self, data: bytes, timeout: float) -> Frame:
        """Send one encoded command and wait for its answer."""
        if self.closed:
            raise EslClosed("not connected to the event socket")
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        # Written and queued in one step: answers come back in the order sent.
        self.writer.write(data)
        self._replies.append(future)
        try:
            await self.writer.drain()
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError as error:
            # The answer may still come; this connection can no longer be trusted to
            # pair answers with commands.
            self.close()
            raise EslError(f"no answer from the event socket within {timeout:g}s") from error
        except ConnectionError as error:
            self.close()
            raise EslClosed(f"event socket connection lost: {error}") from error

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        while self._replies:
            future = self._replies.popleft()
            if not future.done():
                future.set_exception(EslClosed("event socket connection lost"))
        self.writer.close()


async def open_connection(host: str, port: int, password: str, events: Sequence[str],
                          on_event: Callable[[Event], None],
                          timeout: float = 5.0) -> Connection:
    """Connect, authenticate and subscribe; the caller runs `connection.run()`."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError as error:
        raise EslClosed(f"no connection to {host}:{port} within {timeout:g}s") from error
    except OSError as error:
        raise EslClosed(f"cannot connect to {host}:{port}: {error.strerror or error}") \
            from error
    connection = Connection(reader, writer, on_event)
    try:
        await connection.login(password, events, timeout)
    except TimeoutError as error:
        connection.close()
        raise EslError(f"no answer from {host}:{port} within {timeout:g}s") from error
    except BaseException:
        connection.close()
        raise
    return connection


def reply_ok(frame: Frame, what: str) -> str:
    """The text after `+OK` of a command reply; CommandFailed for `-ERR`."""
    text = frame.reply_text
    if not text.startswith("+OK"):
        raise CommandFailed(f"{what} refused: {text or 'no Reply-Text'}")
    return text[3:].strip()


class EslClient:
    """One connection kept open: reconnects with backoff, resubscribes, hands out events.

    `last_error` says why it is not connected (for readiness and logs); a wrong password
    is retried at the slowest pace, since only an operator can fix it.
    """

    def __init__(self, host: str, port: int, password: str, events: Sequence[str],
                 on_event: Callable[[Event], None], *, timeout: float = 5.0,
                 backoff_initial: float = 0.2, backoff_max: float = 10.0) -> None:
        self.host, self.port, self.password = host, port, password
        self.events = list(events)
        self.on_event = on_event
        self.timeout = timeout
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.last_error: str | None = "not connected yet"
        self.connects = 0
        self._connection: Connection | None = None
        self._connected = asyncio.Event()
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.closed

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._keep_connected(),
                                             name=f"esl:{self.where}")

    async def close(self) -> None:
        self._closing.set()
        if self._connection is not None:
            self._connection.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def wait_connected(self, timeout: float) -> bool:
        """True once connected (at once when already), False after `timeout`."""
        if self.connected:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)
        return self.connected

    async def _keep_connected(self) -> None:
        pause = self.backoff_initial
        while not self._closing.is_set():
            try:
                connection = await open_connection(self.host, self.port, self.password,
                                                   self.events, self.on_event, self.timeout)
            except AuthRefused as error:
                self.last_error = f"{error}: check FREESWITCH_ESL_PASSWORD"
                log.error("FreeSWITCH event socket %s: %s", self.where, self.last_error)
                pause = self.backoff_max
            except (EslError, OSError) as error:
                self.last_error = str(error)
                log.warning("FreeSWITCH event socket %s: %s; retrying in %.1fs", self.where,
                            error, pause)
            else:
                self._connection = connection
                self.connects += 1
                self.last_error = None
                self._connected.set()
                log.info("connected to the FreeSWITCH event socket %s", self.where)
                pause = self.backoff_initial
                try:
                    await connection.run()
                except (EslError, OSError) as error:
                    self.last_error = str(error)
                finally:
                    self._connected.clear()
                    self._connection = None
                if self._closing.is_set():
                    return
                self.last_error = self.last_error or "the connection ended"
                log.warning("FreeSWITCH event socket %s: %s; reconnecting", self.where,
                            self.last_error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(),
                                       pause * random.uniform(0.8, 1.2))  # noqa: S311
            pause = min(pause * 2, self.backoff_max)

    def _current(self) -> Connection:
        connection = self._connection
        if connection is None or connection.closed:
            raise EslClosed(f"not connected to the FreeSWITCH event socket {self.where}"
                            + (f" ({self.last_error})" if self.last_error else ""))
        return connection

    async def api(self, command: str, timeout: float | None = None) -> str:
        """`api <command>`: the response body as text."""
        frame = await self._current().command(encode_command(f"api {command}"),
                                              timeout or self.timeout)
        return frame.body.decode("utf-8", errors="replace")

    async def sendevent(self, name: str, headers: Sequence[tuple[str, str]],
                        body: str | None = None, timeout: float | None = None) -> str:
        """`sendevent <name>` with headers and a body; the new event's Event-UUID."""
        data = encode_command(f"sendevent {name}", headers,
                              body.encode() if body is not None else None)
        frame = await self._current().command(data, timeout or self.timeout)
        return reply_ok(frame, "sendevent")


async def api_once(host: str, port: int, password: str, commands: Sequence[str],
                   timeout: float = 5.0) -> list[str]:
    """Connect, log in, run `api` commands one after the other and hang up (for checks,
    not traffic): their answers in order."""
    connection = await open_connection(host, port, password, (), lambda event: None, timeout)
    reading = asyncio.create_task(connection.run())
    answers = []
    try:
        for command in commands:
            frame = await connection.command(encode_command(f"api {command}"), timeout)
            answers.append(frame.body.decode("utf-8", errors="replace"))
    finally:
        connection.close()
        with contextlib.suppress(EslError, OSError, asyncio.CancelledError):
            await reading
    return answers
