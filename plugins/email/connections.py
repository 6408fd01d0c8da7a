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
import socket
import time
from dataclasses import dataclass, field
from functools import lru_cache

import aiosmtplib
from aiosmtplib import SMTPResponse, SMTPStatus
from aiosmtplib.email import quote_address

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
        timeout = self.settings.timeout
        async with asyncio.timeout(timeout):
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
    message to count it).

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
        raise aiosmtplib.SMTPRecipientsRefused([
            aiosmtplib.SMTPRecipientRefused(answer.code, answer.message, address)
            for address, answer in refused.items()])
    needs_utf8 = utf8 and not all(envelope[a].isascii() for a in [sender, *sending])
    try:
        async with asyncio.timeout(timeout):
            options = [b"SIZE=%d" % len(data)] if smtp.supports_extension("size") else []
            if needs_utf8:
                options.append(b"SMTPUTF8")
            response = await smtp.execute_command(b"MAIL", b"FROM:" + _quoted(envelope[sender]),
                                                  *options, timeout=None)
            if response.code != SMTPStatus.completed:
                raise aiosmtplib.SMTPSenderRefused(response.code, response.message, sender)
            for recipient in sending:
                response = await smtp.execute_command(
                    b"RCPT", b"TO:" + _quoted(envelope[recipient]), timeout=None)
                if response.code not in (SMTPStatus.completed, SMTPStatus.will_forward):
                    refused[recipient] = response
            if len(refused) == len(recipients):
                raise aiosmtplib.SMTPRecipientsRefused([
                    aiosmtplib.SMTPRecipientRefused(answer.code, answer.message, address)
                    for address, answer in refused.items()])
            await smtp.data(data, timeout=None)
            return refused
    except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
        # Reset the envelope for the next transaction on this connection.
        with contextlib.suppress(ConnectionError, aiosmtplib.SMTPException, TimeoutError):
            await smtp.rset(timeout=timeout)
        raise


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

