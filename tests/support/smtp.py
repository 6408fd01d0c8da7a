"""A real SMTP server for tests (aiosmtpd): what it accepted, and scripted refusals."""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from pbxsms.sim.mta import TogetherSMTP


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
        # EHLO offers PIPELINING (RFC 2920)
        self.pipelining = False
        # a refused RCPT still counts for DATA, which is then answered 354 with no
        # recipient: what RFC 2920 §3.1 tells a client to be ready for
        self.data_without_recipients = False
        # the RCPT of this address drops the connection instead of answering
        self.drop_at: str | None = None
        # seconds each RCPT waits before its answer
        self.rcpt_delay = 0.0
        # the answer to the DATA command itself, when not "354 ..."
        self.data_command_reply: str | None = None
        # the answer after the message, when not "250 ..." (then the message is not kept)
        self.data_reply: str | None = None

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          mail_options: list[str]) -> str:
        if self.sender_reply is not None:
            return self.sender_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if self.rcpt_delay:
            await asyncio.sleep(self.rcpt_delay)
        if address == self.drop_at:
            server.transport.abort()
            return "451 never sent"
        reply = "250 OK"
        queued = self.next_replies.get(address)
        if queued:
            reply = queued.pop(0)
        elif address in self.always:
            reply = self.always[address]
        if reply.startswith("250") or self.data_without_recipients:
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply is not None:
            return self.data_reply
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


class RecordingSMTP(TogetherSMTP):
    """aiosmtpd's server, noting each piece of data as it was read from the socket (which
    commands came together), and optionally answering the commands that came together
    in one write, as Postfix does for a client that pipelines."""

    def __init__(self, handler: Any, packets: list[bytes], answers_together: bool,
                 **options: Any) -> None:
        super().__init__(handler, **options)
        self.packets = packets
        self.answers_together = answers_together

    def data_received(self, data: bytes) -> None:
        self.packets.append(data)
        super().data_received(data)

    async def smtp_DATA(self, arg: str) -> None:
        reply = self.event_handler.data_command_reply
        assert self.envelope is not None
        if reply is not None and self.envelope.rcpt_tos:
            await self.push(reply)
            return
        await super().smtp_DATA(arg)

class _Controller(Controller):
    def __init__(self, server: SmtpServer, **options: Any) -> None:
        super().__init__(server.mailbox, **options)
        self.recording = server

    def factory(self) -> SMTP:
        return RecordingSMTP(self.handler, self.recording.packets, self.recording.answers_together,
                             **self.SMTP_kwargs)


class SmtpServer:
    """A real aiosmtpd server on a fixed port, which a test may stop and start again."""

    def __init__(self, port: int, pipelining: bool = False, answers_together: bool = False,
                 **options: Any) -> None:
        """`pipelining`: EHLO offers PIPELINING; `answers_together`: commands that came in
        one piece are answered in one write (else each answer is written on its own).
        `options` go to aiosmtpd's Controller: e.g. `ssl_context` (implicit TLS),
        `enable_SMTPUTF8`."""
        self.port = port
        self.mailbox = Mailbox()
        self.mailbox.pipelining = pipelining
        self.answers_together = answers_together
        # every piece of data read from the clients, in order
        self.packets: list[bytes] = []
        self.options = options
        self._controller: Controller | None = None

    async def start(self) -> None:
        self._controller = _Controller(self, hostname="127.0.0.1", port=self.port,
                                       **self.options)
        await asyncio.to_thread(self._controller.start)

    async def stop(self) -> None:
        if self._controller is not None:
            await asyncio.to_thread(self._controller.stop)
            self._controller = None
