"""Open SMTP connections to the configured server, reused from one email to the next.

A new connection costs a TCP (and TLS) handshake, the greeting, EHLO, a login and QUIT:
more round trips than the mail transaction itself. The pool keeps up to
`PBXSMS_SMTP_CONNECTIONS` open; one that sat idle is checked with `NOOP` before use,
one idle for long is closed, and one that failed in any way but a refusal is dropped.
Reuse changes nothing about what is sent: each email is still one transaction, and
the ledger still records each address once it is settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import time
from dataclasses import dataclass, field
from functools import lru_cache

import aiosmtplib
from aiosmtplib import SMTPResponse, SMTPStatus
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import normalize_message_line_endings

from pbxsms.plugins.email.settings import EmailSettings

log = logging.getLogger("pbxsms.email")

# Idle longer than this, a connection is checked with NOOP before a transaction: the
# server may have closed it meanwhile (most servers wait minutes before they do).
CHECK_AFTER = 5.0
# Idle longer than this, a connection is closed: no server should keep it for us.
CLOSE_AFTER = 30.0
# `421`: the server is closing this connection.
CLOSING = 421


@dataclass
class _Connection:
    smtp: aiosmtplib.SMTP
    used_at: float = field(default_factory=time.monotonic)


class SmtpPool:
    """Connections to one SMTP server with one set of credentials."""

    def __init__(self, settings: EmailSettings) -> None:
        assert settings.host is not None
        self.settings = settings
        self._slots = asyncio.Semaphore(settings.connections)
        self._idle: list[_Connection] = []
        self._closed = False
        self._sweeper: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def idle(self) -> int:
        """Open connections waiting for the next email."""
        return len(self._idle)

    async def sendmail(self, sender: str, recipients: list[str],
                       data: bytes) -> dict[str, SMTPResponse]:
        """One transaction; the refused recipients, as `aiosmtplib.SMTP.sendmail`.

        Raises what aiosmtplib raises (refusals, disconnects, timeouts).
        """
        if self._slots.locked():  # every connection busy: wait, up to the timeout
            async with asyncio.timeout(self.settings.timeout):
                await self._slots.acquire()
        else:  # a free slot is taken at once: no timer for it (5 us an email)
            await self._slots.acquire()
        try:
            connection = await self._connection()
            keep = False
            try:
                refused = await transaction(connection.smtp, sender, recipients, data,
                                            self.settings.timeout)
                keep = True
                return refused
            except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPResponseException) \
                    as error:
                # A refusal ends the transaction (aiosmtplib sent RSET); the connection
                # stays good unless the server is closing it.
                keep = getattr(error, "code", None) != CLOSING
                raise
            finally:
                self._release(connection, keep)
        finally:
            self._slots.release()

    async def _connection(self) -> _Connection:
        """An open connection: the most recently used idle one, else a new one."""
        while self._idle:
            connection = self._idle.pop()
            if not connection.smtp.is_connected:
                continue
            if time.monotonic() - connection.used_at > CHECK_AFTER:
                try:
                    await connection.smtp.noop()
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    connection.smtp.close()
                    continue
            return connection
        settings = self.settings
        smtp = aiosmtplib.SMTP(
            hostname=settings.host, port=settings.port, timeout=settings.timeout,
            local_hostname=await local_hostname(), start_tls=settings.starttls,
            use_tls=settings.tls, tls_context=settings.tls_context(),
            username=settings.username,
            password=settings.password.get_secret_value() if settings.password else None)
        try:
            await smtp.connect()  # greeting, EHLO, STARTTLS and login as configured
            if smtp.is_ehlo_or_helo_needed:  # no STARTTLS or login: aiosmtplib waits
                try:
                    await smtp.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await smtp.helo()
        except BaseException:
            smtp.close()
            raise
        return _Connection(smtp)

    def _release(self, connection: _Connection, keep: bool) -> None:
        if not keep or self._closed or not connection.smtp.is_connected:
            connection.smtp.close()
            return
        connection.used_at = time.monotonic()
        self._idle.append(connection)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(CLOSE_AFTER, self._sweep)

    def _sweep(self) -> None:
        """Close the connections idle for `CLOSE_AFTER`; look again while any remain."""
        self._sweeper = None
        now = time.monotonic()
        stale = [c for c in self._idle if now - c.used_at >= CLOSE_AFTER]
        self._idle = [c for c in self._idle if now - c.used_at < CLOSE_AFTER]
        for connection in stale:
            self._quit(connection)
        if self._idle:
            wait = CLOSE_AFTER - (now - min(c.used_at for c in self._idle))
            self._sweeper = asyncio.get_running_loop().call_later(max(wait, 0.1), self._sweep)

    def _quit(self, connection: _Connection) -> None:
        task = asyncio.create_task(_quit(connection.smtp))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """QUIT the idle connections; those in use close when their transaction ends."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        idle, self._idle = self._idle, []
        for connection in idle:
            self._quit(connection)
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=self.settings.timeout)


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    try:
        if smtp.is_connected:
            await smtp.quit(timeout=5.0)
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
        log.debug("SMTP QUIT: %s", error)
    finally:
        smtp.close()


async def transaction(smtp: aiosmtplib.SMTP, sender: str, recipients: list[str],
                      data: bytes, timeout: float) -> dict[str, SMTPResponse]:
    """One mail transaction, as `aiosmtplib.SMTP.sendmail` does it (same commands, same
    errors, RSET after a refusal), for less CPU: one timer for the transaction instead of
    one per command; each address parsed once per process, not twice per email; the SIZE
    from `data` itself, which `compose` wrote with CRLF line ends (aiosmtplib rewrites the
    message to count it). A server that offers PIPELINING gets MAIL, the RCPTs and DATA
    in one write (`_pipelined`).

    An address with a non-ASCII local part goes with SMTPUTF8 when the server offers it;
    a server that does not refuses it here (a 553 of ours, as if the server had), while
    the other addresses get the email."""
    refused: dict[str, SMTPResponse] = {}
    envelope = {address: envelope_address(address) for address in [sender, *recipients]}
    utf8 = smtp.supports_extension("smtputf8")
    if not utf8:
        for address in recipients:
            if not envelope[address].isascii():
                refused[address] = SMTPResponse(NO_SMTPUTF8, NO_SMTPUTF8_TEXT)
        if not envelope[sender].isascii():
            raise aiosmtplib.SMTPSenderRefused(NO_SMTPUTF8, NO_SMTPUTF8_TEXT, sender)
    sending = [address for address in recipients if address not in refused]
    if not sending:
        raise _all_refused(refused)
    needs_utf8 = utf8 and not all(envelope[a].isascii() for a in [sender, *sending])
    options = [b"SIZE=%d" % len(data)] if smtp.supports_extension("size") else []
    if needs_utf8:
        options.append(b"SMTPUTF8")
    mail = [b"MAIL", b"FROM:" + _quoted(envelope[sender]), *options]
    rcpts = [[b"RCPT", b"TO:" + _quoted(envelope[recipient])] for recipient in sending]
    try:
        async with asyncio.timeout(timeout):
            if smtp.supports_extension("pipelining"):
                await _pipelined(smtp, mail, rcpts, sender, sending, refused, len(recipients),
                                 data)
                return refused
            response = await smtp.execute_command(*mail, timeout=None)
            if response.code != SMTPStatus.completed:
                raise aiosmtplib.SMTPSenderRefused(response.code, response.message, sender)
            for recipient, rcpt in zip(sending, rcpts, strict=True):
                response = await smtp.execute_command(*rcpt, timeout=None)
                if response.code not in (SMTPStatus.completed, SMTPStatus.will_forward):
                    refused[recipient] = response
            if len(refused) == len(recipients):
                raise _all_refused(refused)
            await smtp.data(data, timeout=None)
            return refused
    except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
        # Reset the envelope for the next transaction on this connection.
        with contextlib.suppress(ConnectionError, aiosmtplib.SMTPException, TimeoutError):
            await smtp.rset(timeout=timeout)
        raise


async def _pipelined(smtp: aiosmtplib.SMTP, mail: list[bytes], rcpts: list[list[bytes]],
                     sender: str, sending: list[str], refused: dict[str, SMTPResponse],
                     addresses: int, data: bytes) -> None:
    """MAIL, every RCPT and DATA in one write, their answers read in order, then the body:
    two round trips instead of 2 + recipients (RFC 2920). Every answer of the group is
    read before anything is decided, so none is left for the next command; the errors
    are those of the sequence without PIPELINING."""
    commands = [mail, *rcpts, [b"DATA"]]
    mailed, *answers, started = await _exchange(smtp, b"".join(
        _command(command) for command in commands), len(commands))
    for recipient, answer in zip(sending, answers, strict=True):
        if answer.code not in (SMTPStatus.completed, SMTPStatus.will_forward):
            refused[recipient] = answer
    sender_refused = mailed.code != SMTPStatus.completed
    if started.code == SMTPStatus.start_input and (sender_refused
                                                   or len(refused) == addresses):
        # RFC 2920 §3.1: a server that took DATA with no recipient gets a lone dot (then
        # RSET, as for any refusal); one that refused it, as it should, only the RSET.
        await _exchange(smtp, b".\r\n", 1)
    if sender_refused:
        raise aiosmtplib.SMTPSenderRefused(mailed.code, mailed.message, sender)
    if len(refused) == addresses:
        raise _all_refused(refused)
    if started.code != SMTPStatus.start_input:
        raise aiosmtplib.SMTPDataError(started.code, started.message)
    (stored,) = await _exchange(smtp, _message(data), 1)
    if stored.code != SMTPStatus.completed:
        raise aiosmtplib.SMTPDataError(stored.code, stored.message)


def _all_refused(refused: dict[str, SMTPResponse]) -> aiosmtplib.SMTPRecipientsRefused:
    return aiosmtplib.SMTPRecipientsRefused([
        aiosmtplib.SMTPRecipientRefused(answer.code, answer.message, address)
        for address, answer in refused.items()])


# What aiosmtplib refuses in a command's arguments: CR and LF would start another command.
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
# A line of the message starting with a dot gets another (RFC 5321 §4.5.2).
_LEADING_DOT = re.compile(rb"(?m)^\.")


def _command(args: list[bytes]) -> bytes:
    for arg in args:
        if _CONTROL.search(arg):
            raise ValueError("Command arg contains a prohibited control character")
    return b" ".join(args) + b"\r\n"


def _message(data: bytes) -> bytes:
    """`data` as DATA sends it, the same bytes as aiosmtplib's `data`: CRLF line ends,
    leading dots doubled, the closing dot."""
    if _sendable(data):
        return data + b".\r\n"
    return _LEADING_DOT.sub(b"..", normalize_message_line_endings(data)) + b".\r\n"


def _sendable(data: bytes) -> bool:
    """Whether `data` needs neither rewrite: every CR and LF in a CRLF, a CRLF at the end,
    no line starting with a dot (what `compose` writes). Counting and one search cost a
    few µs; the two regex passes over an email cost 20-35."""
    crlf = data.count(b"\r\n")
    return (data.endswith(b"\r\n") and data.count(b"\n") == crlf and data.count(b"\r") == crlf
            and not data.startswith(b".") and b"\n." not in data)


class _Answers:
    """Stands for `SMTPProtocol`'s response future while a pipelined group is answered.

    The protocol parses one response per `data_received` and then ignores data while that
    response waits to be picked up, which would lose answers that come in separate
    packets just apart. This one is never done, so each packet is kept: the protocol
    hands it the first complete answer and leaves the rest in its buffer."""

    def __init__(self) -> None:
        self.answers: list[SMTPResponse] = []
        self.error: BaseException | None = None
        self._wake = asyncio.get_running_loop().create_future()

    def done(self) -> bool:
        return False

    def set_result(self, response: SMTPResponse) -> None:
        self.answers.append(response)
        self._woken()

    def set_exception(self, error: BaseException) -> None:
        self.error = self.error or error
        self._woken()

    def exception(self) -> BaseException | None:
        return self.error

    def _woken(self) -> None:
        if not self._wake.done():
            self._wake.set_result(None)

    async def wait(self) -> None:
        await self._wake
        self._wake = asyncio.get_running_loop().create_future()


async def _exchange(smtp: aiosmtplib.SMTP, commands: bytes, count: int) -> list[SMTPResponse]:
    """Write `commands` at once and read their `count` answers, in order.

    aiosmtplib (5.1) reads one answer per command sent and has no call for several: this
    is the one place that uses its protocol's internals (`_response_waiter`,
    `_response_pending`, `_read_response_from_buffer`); `tests/email/test_pipelining.py`
    checks they still behave as relied on. A group cut short (disconnect, timeout, a
    malformed answer) closes the connection: its other answers may still be on the way."""
    protocol = smtp.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("Server not connected")
    waiting = _Answers()
    protocol._response_waiter = waiting  # type: ignore[assignment]
    protocol._response_pending = True
    answers: list[SMTPResponse] = []
    try:
        protocol.write(commands)
        while True:
            answers += waiting.answers
            waiting.answers.clear()
            while len(answers) < count and (
                    answer := protocol._read_response_from_buffer()) is not None:
                answers.append(answer)
            if len(answers) >= count:
                break
            if waiting.error is not None:
                raise waiting.error
            await waiting.wait()
    except BaseException:
        smtp.close()
        raise
    finally:
        protocol._response_pending = False
        protocol._response_waiter = (
            None if protocol.transport is None else asyncio.get_running_loop().create_future())
    if len(answers) > count or protocol._read_response_from_buffer() is not None:
        # More answers than commands: which is whose is unknown.
        smtp.close()
        raise aiosmtplib.SMTPResponseException(SMTPStatus.invalid_response,
                                               "more SMTP answers than commands")
    if any(answer.code == SMTPStatus.domain_unavailable for answer in answers):
        smtp.close()  # 421: the server is leaving (aiosmtplib closes on it too)
    return answers


# Our own refusal of an address that needs SMTPUTF8 from a server without it: permanent,
# as the server's own 553 would be (RFC 6531 §3.7.4.1).
NO_SMTPUTF8 = 553
NO_SMTPUTF8_TEXT = ("5.6.7 the address has non-ASCII characters, and the SMTP server does "
                    "not offer SMTPUTF8")


@lru_cache(maxsize=256)
def envelope_address(address: str) -> str:
    """`address` for the envelope: an internationalised domain in its ASCII form (IDNA),
    so only a non-ASCII local part needs SMTPUTF8."""
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return address  # not a valid IDN: sent as it is, with SMTPUTF8 or refused


@lru_cache(maxsize=256)
def _quoted(address: str) -> bytes:
    """`<address>` for MAIL or RCPT (UTF-8 only when it needs SMTPUTF8); ValueError for
    one that cannot be sent."""
    return quote_address(address).encode("utf-8")


_HOSTNAME: list[str] = []


async def local_hostname() -> str:
    """Our name for EHLO, looked up once: aiosmtplib would ask DNS on every connection."""
    if not _HOSTNAME:
        _HOSTNAME.append(await asyncio.to_thread(socket.getfqdn))
    return _HOSTNAME[0]


def pool_key(settings: EmailSettings) -> tuple[object, ...]:
    """What a pool's connections depend on: a reload that changes it starts a new pool."""
    password = settings.password.get_secret_value() if settings.password else None
    return (settings.host, settings.port, settings.starttls, settings.tls, settings.ca_file,
            settings.username, password, settings.timeout, settings.connections)

