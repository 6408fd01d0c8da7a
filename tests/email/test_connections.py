"""The SMTP connection pool against a real SMTP server: reuse, refusals, idle closing."""

from __future__ import annotations

import aiosmtplib
import pytest

from pbxsms.plugins.email import connections
from pbxsms.plugins.email.connections import SmtpPool
from pbxsms.plugins.email.settings import EmailSettings
from tests.helpers import wait_until
from tests.support.delivery import SENDER
from tests.support.smtp import SmtpServer

EMAIL = b"Subject: test\r\n\r\nhello\r\n"


def pool_for(smtp: SmtpServer) -> SmtpPool:
    return SmtpPool(EmailSettings(host="127.0.0.1", port=smtp.port, timeout=5.0))


async def test_a_refusal_keeps_the_connection(smtp: SmtpServer) -> None:
    smtp.mailbox.always["gone@example.com"] = "550 5.1.1 No such user"
    pool = pool_for(smtp)
    try:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
            await pool.sendmail(SENDER, ["gone@example.com"], EMAIL)
        refused = await pool.sendmail(SENDER, ["desk@example.com", "gone@example.com"], EMAIL)
        assert list(refused) == ["gone@example.com"]
        await pool.sendmail(SENDER, ["desk@example.com"], EMAIL)
    finally:
        await pool.close()
    assert len(smtp.mailbox.received_by("desk@example.com")) == 2
    assert smtp.mailbox.connections == 1 and pool.idle == 0


async def test_a_refused_sender_is_reported_and_the_connection_kept(smtp: SmtpServer) -> None:
    smtp.mailbox.sender_reply = "553 5.7.1 Sender address rejected"
    pool = pool_for(smtp)
    try:
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
            await pool.sendmail(SENDER, ["desk@example.com"], EMAIL)
        assert refused.value.code == 553
        smtp.mailbox.sender_reply = None
        assert await pool.sendmail(SENDER, ["desk@example.com"], EMAIL) == {}
    finally:
        await pool.close()
    # The envelope was reset after the refusal: the next transaction on the same
    # connection went through.
    assert len(smtp.mailbox.received_by("desk@example.com")) == 1
    assert smtp.mailbox.connections == 1 and pool.idle == 0


async def test_idle_connections_are_checked_then_closed(
    smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connections, "CHECK_AFTER", 0.0)  # NOOP before every reuse
    monkeypatch.setattr(connections, "CLOSE_AFTER", 0.3)
    pool = pool_for(smtp)
    try:
        await pool.sendmail(SENDER, ["desk@example.com"], EMAIL)
        await pool.sendmail(SENDER, ["desk@example.com"], EMAIL)
        assert smtp.mailbox.connections == 1 and pool.idle == 1
        await wait_until(lambda: pool.idle == 0, 5, "the idle connection closed")
        await pool.sendmail(SENDER, ["desk@example.com"], EMAIL)
    finally:
        await pool.close()
    assert len(smtp.mailbox.mails) == 3 and smtp.mailbox.connections == 2
