"""The mail transaction against a real SMTP server with and without PIPELINING (RFC 2920):
what the server received together, refusals at every step, a dropped connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiosmtplib
import pytest
from aiosmtplib import SMTPResponse
from aiosmtplib.protocol import normalize_message_line_endings
from hypothesis import given, settings
from hypothesis import strategies as st

from pbxsms.plugins.email import connections
from pbxsms.plugins.email.connections import SmtpPool
from pbxsms.plugins.email.settings import EmailSettings
from tests.helpers import free_port, wait_until
from tests.support.delivery import SENDER
from tests.support.smtp import SmtpServer

EMAIL = b"Subject: test\r\n\r\nhello\r\n.starts with a dot\r\n"
DESK, FRONT, GONE = "desk@example.com", "front@example.com", "gone@example.com"

# sequential: no PIPELINING; together: offered, and the answers to commands that came
# together written together (as Postfix does); apart: offered, each answer its own write.
KINDS = ["sequential", "together", "apart"]


@pytest.fixture(params=KINDS)
async def server(request: pytest.FixtureRequest) -> AsyncIterator[SmtpServer]:
    kind = request.param
    smtp = SmtpServer(free_port(), pipelining=kind != "sequential",
                      answers_together=kind == "together")
    await smtp.start()
    yield smtp
    await smtp.stop()


def pool_for(smtp: SmtpServer, timeout: float = 5.0) -> SmtpPool:
    return SmtpPool(EmailSettings(host="127.0.0.1", port=smtp.port, timeout=timeout))


def pipelined(smtp: SmtpServer) -> bool:
    return smtp.mailbox.pipelining


def envelope_packets(smtp: SmtpServer) -> list[bytes]:
    """What the server read from the first MAIL on, one entry per read."""
    start = next(i for i, packet in enumerate(smtp.packets) if packet.startswith(b"MAIL"))
    return smtp.packets[start:]


async def test_mail_rcpts_and_data_arrive_together_where_offered(server: SmtpServer) -> None:
    pool = pool_for(server)
    try:
        assert await pool.sendmail(SENDER, [DESK, FRONT], EMAIL) == {}
    finally:
        await pool.close()
    mail = server.mailbox.mails[0]
    assert mail.rcpt_tos == [DESK, FRONT]
    assert mail.message.get_payload() == "hello\r\n.starts with a dot\r\n"  # un-stuffed
    first = envelope_packets(server)[0]
    if pipelined(server):
        assert first == (f"MAIL FROM:<{SENDER}> SIZE={len(EMAIL)}\r\n"
                         f"RCPT TO:<{DESK}>\r\nRCPT TO:<{FRONT}>\r\nDATA\r\n").encode()
    else:
        assert first == f"MAIL FROM:<{SENDER}> SIZE={len(EMAIL)}\r\n".encode()


async def test_some_recipients_refused(server: SmtpServer) -> None:
    server.mailbox.always[GONE] = "550 5.1.1 No such user"
    server.mailbox.next_replies[FRONT] = ["451 4.3.0 Try later"]
    pool = pool_for(server)
    try:
        refused = await pool.sendmail(SENDER, [GONE, DESK, FRONT], EMAIL)
        assert refused == {GONE: SMTPResponse(550, "5.1.1 No such user"),
                           FRONT: SMTPResponse(451, "4.3.0 Try later")}
        assert await pool.sendmail(SENDER, [FRONT], EMAIL) == {}
    finally:
        await pool.close()
    assert [mail.rcpt_tos for mail in server.mailbox.mails] == [[DESK], [FRONT]]
    assert server.mailbox.connections == 1


async def test_every_recipient_refused_resets_and_keeps_the_connection(
        server: SmtpServer) -> None:
    server.mailbox.always[GONE] = "550 5.1.1 No such user"
    server.mailbox.always[FRONT] = "450 4.2.1 Mailbox busy"
    pool = pool_for(server)
    try:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await pool.sendmail(SENDER, [GONE, FRONT], EMAIL)
        assert [(r.recipient, r.code) for r in refused.value.recipients] == [
            (GONE, 550), (FRONT, 450)]
        assert pool.idle == 1
        assert await pool.sendmail(SENDER, [DESK], EMAIL) == {}
    finally:
        await pool.close()
    assert [mail.rcpt_tos for mail in server.mailbox.mails] == [[DESK]]
    assert server.mailbox.connections == 1
    packets = envelope_packets(server)
    if pipelined(server):
        # DATA went with the RCPTs; the server refused it (no recipient): only RSET follows.
        assert packets[0].endswith(b"DATA\r\n") and packets[1] == b"RSET\r\n"
    else:
        assert b"DATA\r\n" not in packets[:4] and packets[3] == b"RSET\r\n"


async def test_a_refused_sender(server: SmtpServer) -> None:
    server.mailbox.sender_reply = "553 5.7.1 Sender address rejected"
    pool = pool_for(server)
    try:
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
            await pool.sendmail(SENDER, [DESK, FRONT], EMAIL)
        assert (refused.value.code, refused.value.sender) == (553, SENDER)
        server.mailbox.sender_reply = None
        assert await pool.sendmail(SENDER, [DESK], EMAIL) == {}
    finally:
        await pool.close()
    assert [mail.rcpt_tos for mail in server.mailbox.mails] == [[DESK]]
    assert server.mailbox.connections == 1
    assert b"RSET\r\n" in envelope_packets(server)


async def test_data_refused_before_and_after_the_message(server: SmtpServer) -> None:
    server.mailbox.data_command_reply = "451 4.3.2 Not now"
    pool = pool_for(server)
    try:
        with pytest.raises(aiosmtplib.SMTPDataError) as before:
            await pool.sendmail(SENDER, [DESK], EMAIL)
        assert before.value.code == 451
        server.mailbox.data_command_reply = None
        server.mailbox.data_reply = "554 5.6.0 Message rejected"
        with pytest.raises(aiosmtplib.SMTPDataError) as after:
            await pool.sendmail(SENDER, [DESK], EMAIL)
        assert after.value.code == 554
        server.mailbox.data_reply = None
        assert await pool.sendmail(SENDER, [DESK], EMAIL) == {}
    finally:
        await pool.close()
    assert len(server.mailbox.mails) == 1 and server.mailbox.connections == 1
    assert envelope_packets(server).count(b"RSET\r\n") == 2


async def test_data_taken_without_a_recipient_gets_a_lone_dot() -> None:
    """RFC 2920 §3.1: the client may not assume DATA is refused when no RCPT was taken;
    if the server answers 354, it ends the message at once and resets."""
    server = SmtpServer(free_port(), pipelining=True, answers_together=True)
    server.mailbox.always[GONE] = "550 5.1.1 No such user"
    server.mailbox.data_without_recipients = True
    await server.start()
    pool = pool_for(server)
    try:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
            await pool.sendmail(SENDER, [GONE], EMAIL)
        assert pool.idle == 1
    finally:
        await pool.close()
        await server.stop()
    packets = envelope_packets(server)
    assert packets[0].endswith(b"DATA\r\n") and packets[1:3] == [b".\r\n", b"RSET\r\n"]
    assert all(b"hello" not in mail.message.as_bytes() for mail in server.mailbox.mails)


async def test_the_server_dropping_the_connection_mid_way(server: SmtpServer) -> None:
    server.mailbox.drop_at = FRONT
    pool = pool_for(server)
    try:
        with pytest.raises(aiosmtplib.SMTPServerDisconnected):
            await pool.sendmail(SENDER, [DESK, FRONT], EMAIL)
        assert pool.idle == 0
        server.mailbox.drop_at = None
        assert await pool.sendmail(SENDER, [DESK, FRONT], EMAIL) == {}
    finally:
        await pool.close()
    assert [mail.rcpt_tos for mail in server.mailbox.mails] == [[DESK, FRONT]]


async def test_a_closing_server_and_a_slow_one(server: SmtpServer) -> None:
    server.mailbox.next_replies[FRONT] = ["421 4.3.2 Shutting down"]
    pool = pool_for(server, timeout=0.5)
    try:
        with pytest.raises(aiosmtplib.SMTPServerDisconnected):
            await pool.sendmail(SENDER, [DESK, FRONT], EMAIL)
        assert pool.idle == 0
        server.mailbox.rcpt_delay = 1.0
        with pytest.raises(TimeoutError):
            await pool.sendmail(SENDER, [DESK], EMAIL)
        assert pool.idle == 0
        server.mailbox.rcpt_delay = 0.0
        assert await pool.sendmail(SENDER, [DESK], EMAIL) == {}
    finally:
        await pool.close()
    assert [mail.rcpt_tos for mail in server.mailbox.mails] == [[DESK]]


async def test_aiosmtplib_internals_as_relied_on() -> None:
    """`connections._exchange` stands in for the protocol's response future: answers cut
    anywhere, and packets read one after another before the reader wakes (uvloop reads a
    socket again in the same poll), come out whole and in order. Fails if aiosmtplib's
    protocol changes under it: then check `_exchange` and the bound in pyproject.toml."""
    server = SmtpServer(free_port(), pipelining=True)
    await server.start()
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, timeout=5.0)
    try:
        await smtp.connect()
        await smtp.ehlo()
        assert smtp.supports_extension("pipelining")
        protocol = smtp.protocol
        assert protocol is not None
        exchange = asyncio.create_task(connections._exchange(smtp, b"", 3))
        await wait_until(lambda: not isinstance(protocol._response_waiter, asyncio.Future),
                         5, "the exchange waiting for answers")
        protocol.data_received(b"250 one\r\n250-two")
        protocol.data_received(b"\r\n250 two more\r\n")
        protocol.data_received(b"354 three\r\n")
        assert await exchange == [SMTPResponse(250, "one"), SMTPResponse(250, "two\ntwo more"),
                                  SMTPResponse(354, "three")]
        # Afterwards the protocol reads one answer a command again.
        assert (await smtp.noop()).code == 250
    finally:
        smtp.close()
        await server.stop()


@settings(max_examples=500)
@given(st.binary(max_size=40) | st.lists(st.sampled_from(
    [b"\r\n", b"\r", b"\n", b".", b"..", b"a", b" ", b"\r\n.", b"\n."]), max_size=12).map(b"".join))
def test_the_message_is_what_aiosmtplib_would_send(data: bytes) -> None:
    """`_message` skips the rewrites for an email that needs none: the same bytes either way."""
    stock = connections._LEADING_DOT.sub(b"..", normalize_message_line_endings(data)) + b".\r\n"
    assert connections._message(data) == stock


def test_a_composed_email_is_sent_as_it_is() -> None:
    email = b"Subject: test\r\n\r\nhello\r\nno dot first\r\n"
    assert connections._sendable(email)
    assert connections._message(email) == email + b".\r\n"
    assert not connections._sendable(EMAIL)  # a line starts with a dot
