"""A strict stand-in for FreeSWITCH's event socket (mod_event_socket) with mod_sms and
mod_sofia behind it, for tests and demos: FreeSWITCH itself cannot be installed here.

It speaks the protocol byte for byte as `mod_event_socket.c` does: the `auth/request`
greeting, `command/reply` answers with `Reply-Text`, `api/response` with a length-delimited
body, events as `text/event-plain` whose header values are URL-encoded the way
`switch_url_encode` does, and `text/disconnect-notice` / `text/rude-rejection` before it
closes. Command blocks are read as `read_packet` reads them (the command line, header
lines, a body of exactly `Content-Length` bytes; header values taken verbatim).

Behind it, a tiny PBX: registered users answer `sofia_contact`; a `sendevent CUSTOM
SMS::SEND_MESSAGE` is "sent to the phone" per a scripted outcome and answered, as mod_sms
does, with a `CUSTOM SMS::DELIVERY_REPORT` carrying every original header. Phones text
back with `phone_message()`, which fires the `MESSAGE` event the chatplan's `fire`
application would. Whatever departs from the protocol, or from how pbxsms must use it,
is kept in `violations` (tests assert it stays empty).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Self

__all__ = ["Delivered", "FakeFreeSwitch", "Outcome", "Received", "fs_url_encode",
           "serve_forever"]

# What the phone side does with the next SMS::SEND_MESSAGE:
#   "200" and other 2xx: the phone takes it, the report says Success;
#   "480", "404", "486", "503", ...: it does not, the report says Failure with that code;
#   "none": no final answer and no report at all (FreeSWITCH's wait expired unseen);
#   "drop": the phone takes it, then the connection that sent it is dropped before the
#           report, which is fired later to whoever listens then;
#   "norecipient": nobody left to send to: `sofia::error` then a Failure without a code.
Outcome = str

# switch_url_encode's unsafe set; control characters and bytes >= 0x80 are encoded too.
_UNSAFE = set(b"\r\n \"#%&+:;<=>?@[\\]^`{|}")
_REASONS = {200: "OK", 202: "Accepted", 404: "Not Found", 408: "Request Timeout",
            480: "Temporarily Unavailable", 486: "Busy Here", 488: "Not Acceptable Here",
            503: "Service Unavailable", 603: "Decline"}
SMS_HEADERS_REQUIRED = ("proto", "dest_proto", "from", "from_user", "from_host", "from_full",
                        "to", "to_user", "to_host", "sip_profile", "type", "blocking")


def fs_url_encode(text: str) -> str:
    """A header value as FreeSWITCH writes it in `plain` events."""
    out = []
    for byte in text.encode():
        if byte in _UNSAFE or byte < 0x20 or byte >= 0x7F:
            out.append(f"%{byte:02X}")
        else:
            out.append(chr(byte))
    return "".join(out)


@dataclass
class Received:
    """One command block as FreeSWITCH read it: the command line, headers, body."""

    command: str
    headers: list[tuple[str, str]]
    body: bytes | None
    raw: bytes
    connection: int

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class Delivered:
    """An SMS that reached a phone: what the SIP MESSAGE carried."""

    to: str
    from_: str
    from_full: str
    body: str
    headers: dict[str, str]
    at: float = field(default_factory=time.time)


@dataclass(eq=False)
class _Listener:
    number: int
    writer: asyncio.StreamWriter
    authed: bool = False
    events: set[str] = field(default_factory=set)
    subclasses: set[str] = field(default_factory=set)
    all_events: bool = False

    def wants(self, name: str, subclass: str | None) -> bool:
        if self.all_events:
            return True
        if name == "CUSTOM":
            return subclass is not None and subclass in self.subclasses
        return name in self.events


class FakeFreeSwitch:
    """An event socket on 127.0.0.1; `await start()` returns its port."""

    def __init__(self, password: str, *, report_delay: float = 0.05,
                 on_delivered: Callable[[Delivered], None] | None = None) -> None:
        self.password = password
        self.report_delay = report_delay
        self.on_delivered = on_delivered
        self.core_uuid = str(uuid.uuid4())
        self.hostname = "fs1.pbx.example.com"
        # "user@domain" → its contact, as `sofia_contact` prints it
        self.registered: dict[str, str] = {}
        self.default_outcome: Outcome = "200"
        self.outcomes: deque[Outcome] = deque()
        self.refuse_address = False  # answer as an ACL refusal does
        self.received: list[Received] = []
        self.delivered: list[Delivered] = []
        self.reports: list[dict[str, str]] = []
        self.violations: list[str] = []
        self.auth_failures = 0
        self.connections = 0
        self._listeners: dict[int, _Listener] = {}
        self._numbers = itertools.count(1)
        self._sequence = itertools.count(1000)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    # -- control, from tests -------------------------------------------------------

    def register(self, user: str, domain: str, contact: str | None = None) -> None:
        self.registered[f"{user}@{domain}"] = contact or \
            f"sofia/internal/sip:{user}@192.0.2.10:5060;transport=udp"

    def unregister(self, user: str, domain: str) -> None:
        self.registered.pop(f"{user}@{domain}", None)

    def script(self, *outcomes: Outcome) -> None:
        """The outcomes of the next sends, in order; then `default_outcome`."""
        self.outcomes.extend(outcomes)

    @property
    def listeners(self) -> int:
        """Authenticated connections open now."""
        return sum(1 for listener in self._listeners.values() if listener.authed)

    def sent_events(self, subclass: str = "SMS::SEND_MESSAGE") -> list[Received]:
        return [r for r in self.received if r.command.startswith("sendevent")
                and r.header("Event-Subclass") == subclass]

    async def drop_connections(self) -> None:
        """Cut every connection without a goodbye (a crash or a network fault)."""
        for listener in list(self._listeners.values()):
            listener.writer.transport.abort()
        self._listeners.clear()

    async def phone_message(self, from_user: str, domain: str, to_user: str, body: str,
                            content_type: str = "text/plain",
                            extra: dict[str, str] | None = None) -> None:
        """A phone's SIP MESSAGE, fired as a `MESSAGE` event by the chatplan's `fire`."""
        headers = {
            "proto": "sip", "login": f"sip:{from_user}@{domain}",
            "from": f"{from_user}@{domain}", "from_user": from_user, "from_host": domain,
            "to": f"{to_user}@{domain}", "to_user": to_user, "to_host": domain,
            "subject": "SIMPLE MESSAGE", "context": "public", "type": content_type,
            "from_full": f"<sip:{from_user}@{domain}>;tag={uuid.uuid4().hex[:10]}",
            "sip_profile": "internal", "max_forwards": "70", "DP_MATCH": to_user,
            **(extra or {})}
        self._fire("MESSAGE", None, headers, body)

    # -- lifecycle -----------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self.drop_connections()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- one connection --------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        listener = _Listener(next(self._numbers), writer)
        if self.refuse_address:
            text = b"Access Denied, go away.\n"
            writer.write(b"Content-Type: text/rude-rejection\nContent-Length: %d\n\n%s"
                         % (len(text), text))
            await self._close(writer)
            return
        self._listeners[listener.number] = listener
        try:
            writer.write(b"Content-Type: auth/request\n\n")
            await writer.drain()
            while True:
                block = await self._read_packet(reader, listener.number)
                if block is None:
                    return
                self.received.append(block)
                if not await self._command(listener, block):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._listeners.pop(listener.number, None)
            await self._close(writer)

    async def _read_packet(self, reader: asyncio.StreamReader,
                           connection: int) -> Received | None:
        """One command block, read the way mod_event_socket's read_packet reads it."""
        raw = bytearray()
        while True:
            line = await reader.readline()
            if not line:
                return None
            if not raw and line in (b"\n", b"\r\n"):
                continue  # read_packet skips leading line ends
            raw += line
            if line in (b"\n", b"\r\n"):
                break
        lines = bytes(raw).decode("utf-8", errors="replace").split("\n")
        command = lines[0].rstrip("\r")
        headers: list[tuple[str, str]] = []
        body: bytes | None = None
        for text in lines[1:]:
            text = text.rstrip("\r")
            if not text:
                continue
            name, sep, value = text.partition(":")
            if not sep:
                self.violations.append(f"header line without ':': {text[:60]!r}")
                continue
            value = value.lstrip(" ")
            headers.append((name, value))
            if name.lower() == "content-length":
                try:
                    size = int(value)
                except ValueError:
                    self.violations.append(f"Content-Length not a number: {value!r}")
                    continue
                if size < 0 or size > 16 * 1024 * 1024:
                    self.violations.append(f"Content-Length out of range: {size}")
                    continue
                body = await reader.readexactly(size) if size else b""
                raw += body
        return Received(command, headers, body, bytes(raw), connection)

    async def _command(self, listener: _Listener, block: Received) -> bool:
        """Answer one command; False once the connection must close."""
        command = block.command
        writer = listener.writer
        if command.startswith(("exit", "...")):
            self._reply(writer, "+OK bye")
            await self._goodbye(writer)
            return False
        if not listener.authed:
            if command.startswith("auth "):
                if command[5:] == self.password:
                    listener.authed = True
                    self._reply(writer, "+OK accepted")
                    return True
                self.auth_failures += 1
                self._reply(writer, "-ERR invalid")
                await self._goodbye(writer)
                return False
            self.violations.append(f"{command.split(' ')[0]!r} before auth")
            return True  # mod_event_socket answers nothing then
        if block.body is not None and not command.startswith("sendevent"):
            self.violations.append(f"a body on {command.split(' ')[0]!r}")
        if command.startswith("event "):
            self._subscribe(listener, command)
        elif command.startswith("api "):
            self._api(writer, command[4:])
        elif command.startswith("sendevent"):
            self._sendevent(listener, block)
        elif command.startswith("noevents"):
            listener.events.clear()
            listener.subclasses.clear()
            listener.all_events = False
            self._reply(writer, "+OK no longer listening for events")
        else:
            self.violations.append(f"unexpected command {command[:40]!r}")
            self._reply(writer, "-ERR command not found")
        await writer.drain()
        return True

    def _subscribe(self, listener: _Listener, command: str) -> None:
        words = command.split()
        form = words[1] if len(words) > 1 else ""
        if form != "plain":
            self.violations.append(f"event format {form!r}: pbxsms reads plain events")
        custom = False
        for word in words[2:]:
            if custom:
                listener.subclasses.add(word)
            elif word == "CUSTOM":
                custom = True
            elif word in ("all", "ALL"):
                listener.all_events = True
            else:
                listener.events.add(word)
        self._reply(listener.writer, f"+OK event listener enabled {form}")

    def _api(self, writer: asyncio.StreamWriter, line: str) -> None:
        name, _, args = line.partition(" ")
        if name == "sofia_contact":
            user = args.strip().split("/", 1)[-1]
            text = self.registered.get(user, "error/user_not_registered")
        elif name == "module_exists":
            text = "true" if args.strip() in ("mod_sms", "mod_sofia") else "false"
        elif name == "status":
            text = "UP 0 years, 0 days, 0 hours, 1 minute\nFreeSWITCH (Version 1.10.12) is ready\n"
        else:
            text = f"-ERR {name} Command not found!\n"
        data = text.encode()
        writer.write(b"Content-Type: api/response\nContent-Length: %d\n\n%s"
                     % (len(data), data))

    def _sendevent(self, listener: _Listener, block: Received) -> None:
        name = block.command[len("sendevent"):].strip()
        headers = {k: v for k, v in block.headers if k.lower() != "content-length"}
        subclass = block.header("Event-Subclass")
        if name == "CUSTOM" and not subclass:
            self.violations.append("sendevent CUSTOM without Event-Subclass")
        event_uuid = str(uuid.uuid4())
        self._reply(listener.writer, f"+OK {event_uuid}")
        if subclass != "SMS::SEND_MESSAGE":
            return
        if "SMS::DELIVERY_REPORT" not in listener.subclasses and not listener.all_events:
            self.violations.append("SMS::SEND_MESSAGE sent before subscribing to "
                                   "SMS::DELIVERY_REPORT")
        missing = [h for h in SMS_HEADERS_REQUIRED if h not in headers]
        if missing:
            self.violations.append(f"SMS::SEND_MESSAGE without {', '.join(missing)}")
        if headers.get("type") != "text/plain":
            self.violations.append(f"SMS::SEND_MESSAGE type {headers.get('type')!r}")
        if headers.get("blocking") != "true":
            self.violations.append("SMS::SEND_MESSAGE not blocking")
        if block.body is None:
            self.violations.append("SMS::SEND_MESSAGE without a body (Content-Length)")
        body = (block.body or b"").decode("utf-8", errors="replace")
        headers["Event-UUID"] = event_uuid
        outcome = self.outcomes.popleft() if self.outcomes else self.default_outcome
        task = asyncio.create_task(self._deliver(listener, headers, body, outcome))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, listener: _Listener, headers: dict[str, str], body: str,
                       outcome: Outcome) -> None:
        """What sofia and mod_sms do with one SMS::SEND_MESSAGE."""
        user = headers.get("to", "")
        user = user.split("/", 1)[-1]
        if outcome == "norecipient" or user not in self.registered:
            self._fire("CUSTOM", "sofia::error",
                       {"Error-Type": "chat", "Error-Reason": "no recipient",
                        "chat_proto": "sip", "chat_from": headers.get("from", ""),
                        "chat_to": headers.get("to", "")}, None)
            await asyncio.sleep(self.report_delay)
            self._report(headers, body, "Failure", None)
            return
        code = None if outcome in ("none", "drop") else int(outcome)
        if outcome == "drop" or (code is not None and 200 <= code < 300):
            delivered = Delivered(
                to=user, from_=headers.get("from", ""), from_full=headers.get("from_full", ""),
                body=body, headers=dict(headers))
            self.delivered.append(delivered)
            if self.on_delivered is not None:
                self.on_delivered(delivered)
        if outcome == "drop":
            listener.writer.transport.abort()
            self._listeners.pop(listener.number, None)
            code = 200
        if outcome == "none":
            return
        await asyncio.sleep(self.report_delay)
        assert code is not None
        self._report(headers, body, "Success" if 200 <= code < 300 else "Failure", code)

    def _report(self, original: dict[str, str], body: str, status: str,
                code: int | None) -> None:
        """mod_sms's send_report: the original headers, then Status (and the SIP code)."""
        headers = {k: v for k, v in original.items()
                   if k not in ("Event-Name", "Event-Subclass", "Event-UUID")}
        headers["Status"] = status
        if code is not None:
            headers["Delivery-Result-Code"] = str(code)
            headers["Delivery-Failure"] = "false" if 200 <= code < 300 else "true"
        self.reports.append(dict(headers))
        self._fire("CUSTOM", "SMS::DELIVERY_REPORT", headers, body)

    # -- the wire ------------------------------------------------------------------

    def _fire(self, name: str, subclass: str | None, headers: dict[str, str],
              body: str | None) -> None:
        """Serialise an event as `switch_event_serialize` does and send it to listeners."""
        now = time.time()
        base = {"Event-Name": name, "Core-UUID": self.core_uuid,
                "FreeSWITCH-Hostname": self.hostname, "FreeSWITCH-Switchname": self.hostname,
                "FreeSWITCH-IPv4": "192.0.2.1",
                "Event-Date-Local": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)),
                "Event-Date-GMT": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now)),
                "Event-Date-Timestamp": str(int(now * 1_000_000)),
                "Event-Calling-File": "mod_sms.c", "Event-Calling-Function": "send_report",
                "Event-Calling-Line-Number": "97", "Event-Sequence": str(next(self._sequence))}
        if subclass:
            base["Event-Subclass"] = subclass
        lines = [f"{key}: {fs_url_encode(value)}\n" for key, value in {**base, **headers}.items()]
        text = "".join(lines)
        data = text.encode()
        encoded = body.encode() if body else b""
        inner = data + (b"Content-Length: %d\n\n" % len(encoded) + encoded if encoded else b"\n")
        frame = b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(inner) + inner
        for listener in list(self._listeners.values()):
            if listener.authed and listener.wants(name, subclass):
                listener.writer.write(frame)

    @staticmethod
    def _reply(writer: asyncio.StreamWriter, text: str) -> None:
        writer.write(f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode())

    @staticmethod
    async def _goodbye(writer: asyncio.StreamWriter) -> None:
        text = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
        writer.write(b"Content-Type: text/disconnect-notice\nContent-Length: %d\n\n%s"
                     % (len(text), text))
        with contextlib.suppress(ConnectionError):
            await writer.drain()

    @staticmethod
    async def _close(writer: asyncio.StreamWriter) -> None:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def serve_forever(host: str, port: int, password: str, users: Sequence[str]) -> None:
    """Run the fake for a demo (`pbxsms freeswitch simulator`) until cancelled.

    `users` (`201@pbx.example.com`) are registered; each text they get is printed. A line
    `<extension@domain> <number> <text>` on stdin is that phone texting the number.
    """

    def show(message: Delivered) -> None:
        print(f"SIP MESSAGE to {message.to} from {message.from_}: {message.body!r}",
              flush=True)

    fake = FakeFreeSwitch(password, on_delivered=show)
    for user in users:
        extension, _, domain = user.partition("@")
        fake.register(extension, domain)
    bound = await fake.start(host, port)
    print(f"FreeSWITCH event socket simulator on {host}:{bound}; registered: "
          f"{', '.join(users) or 'nobody'}; type `<extension@domain> <number> <text>` to "
          "text from a phone", flush=True)
    try:
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                await asyncio.Event().wait()  # stdin closed: serve until stopped
            parts = line.strip().split(" ", 2)
            if len(parts) == 3 and "@" in parts[0]:
                extension, _, domain = parts[0].partition("@")
                await fake.phone_message(extension, domain, parts[1], parts[2])
                print(f"MESSAGE event fired: {parts[0]} to {parts[1]}", flush=True)
            elif line.strip():
                print("expected `<extension@domain> <number> <text>`", flush=True)
    finally:
        await fake.stop()
