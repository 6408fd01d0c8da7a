"""A real SMTP server for tests (aiosmtpd): what it accepted, and scripted refusals."""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Mail:
    """One message as the SMTP server stored it."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class Mailbox:
    """aiosmtpd handler: stores what it accepts; scripted refusals per address."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        # address → replies to its next RCPTs ("451 ..."), then accepted
        self.next_replies: dict[str, list[str]] = {}
        # address → the reply to every RCPT
        self.always: dict[str, str] = {}
        # the SMTP session (one per connection) of each accepted message
        self.sessions: list[Any] = []
        # the reply to MAIL FROM, when not "250 OK"
        self.sender_reply: str | None = None

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          mail_options: list[str]) -> str:
        if self.sender_reply is not None:
            return self.sender_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        queued = self.next_replies.get(address)
        if queued:
            return queued.pop(0)
        if address in self.always:
            return self.always[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        self.sessions.append(session)
        return "250 Message accepted for delivery"

    @property
    def connections(self) -> int:
        """How many SMTP connections carried the accepted messages."""
        return len({id(session) for session in self.sessions})

    def received_by(self, address: str) -> list[EmailMessage]:
        return [mail.message for mail in self.mails if address in mail.rcpt_tos]


class SmtpServer:
    """A real aiosmtpd server on a fixed port, which a test may stop and start again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.mailbox = Mailbox()
        self._controller: Controller | None = None

    async def start(self) -> None:
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        await asyncio.to_thread(self._controller.start)

    async def stop(self) -> None:
        if self._controller is not None:
            await asyncio.to_thread(self._controller.stop)
            self._controller = None
