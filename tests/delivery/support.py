"""Real parts for the delivery tests: an aiosmtpd server, inbound events, status reads."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from nats.js.errors import NotFoundError

from pbxsms.core.model.events import DeadLetter, InboundMessage, Route, State
from pbxsms.core.serve.runtime import Runtime
from pbxsms.core.stores.status import StatusRecord
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.helpers import wait_until

APP_TOKEN = "ringotel-admin-token"
HOOK_TOKEN = "app-webhook-secret"
ORG = "org1"
NUMBER = "+61411111111"  # ours, the one the customer texts
CUSTOMER = "+61422222222"
SENDER = "sms@pbx.example.com"

# Fast retries, so failure paths finish in about a second.
FAST_BUS = """
[plugins]
enabled = ["email", "mobileapp"]

[bus]
backoff_initial = "{backoff_initial}"
backoff_max = "1s"
max_deliver = {max_deliver}
"""


def bus_toml(max_deliver: int = 3, backoff_initial: str = "50ms") -> str:
    return FAST_BUS.format(max_deliver=max_deliver, backoff_initial=backoff_initial)


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


def gateway_env(app: MobileAppSimulator, smtp: SmtpServer, **more: str) -> dict[str, str]:
    return {"RINGOTEL_API_URL": app.api_url, "RINGOTEL_API_TOKEN": APP_TOKEN,
            "RINGOTEL_WEBHOOK_TOKEN": HOOK_TOKEN, "PBXSMS_SMTP_HOST": "127.0.0.1",
            "PBXSMS_SMTP_PORT": str(smtp.port), "PBXSMS_SMTP_FROM": SENDER,
            "PBXSMS_SMTP_TIMEOUT": "5", **more}


def inbound(body: str = "Hello from the customer", *, extension: str | None = "201",
            emails: tuple[str, ...] = ("desk@example.com",), org: str | None = ORG,
            customer: str = CUSTOMER, number: str = NUMBER,
            route: bool = True) -> InboundMessage:
    """An inbound message as the ClickSend webhook publishes it, with its route."""
    return InboundMessage(
        provider="clicksend", provider_message_id=str(uuid.uuid4()).upper(),
        **{"from": customer}, to=number, body=body,
        route=Route(number=number, provider="clicksend", extension=extension,
                    email=list(emails), mobileapp_org=org, domain="pbx.example.com")
        if route else None)


async def publish_inbound(runtime: Runtime, message: InboundMessage,
                          msg_id: str | None = None) -> None:
    """Publish as the inbound path does (`clicksend:<provider id>`); a replay passes its
    own `msg_id` to get past JetStream's duplicate window."""
    await runtime.publish("sms.inbound.clicksend", message,
                          msg_id or f"clicksend:{message.provider_message_id}")


async def record(runtime: Runtime, message_id: str) -> StatusRecord | None:
    return await runtime.status.get(message_id)


async def wait_channel(runtime: Runtime, message_id: str, channel: str, state: State,
                       timeout: float = 10.0) -> StatusRecord:
    """Wait until `channel` of the message is in `state`; return the record."""
    found: list[StatusRecord] = []

    async def reached() -> bool:
        current = await record(runtime, message_id)
        status = current.channels.get(channel) if current else None
        if status is not None and status.state == state:
            found.append(current)  # type: ignore[arg-type]
            return True
        return False

    await wait_until(reached, timeout, f"{channel} {state.value} for {message_id}")
    return found[-1]


async def dead_letter(runtime: Runtime, consumer: str, timeout: float = 10.0) -> DeadLetter:
    """The latest dead letter of `consumer`, waiting for it."""
    letters: list[DeadLetter] = []

    async def stored() -> bool:
        try:
            msg = await runtime.js.get_last_msg(runtime.stream, f"sms.dead.{consumer}")
        except NotFoundError:
            return False
        assert msg.data is not None
        letters.append(DeadLetter.model_validate_json(msg.data))
        return True

    await wait_until(stored, timeout, f"a dead letter of {consumer}")
    return letters[-1]


async def consumers_idle(runtime: Runtime, *names: str, timeout: float = 10.0) -> None:
    """Wait until each named consumer has handled (acked) everything published so far."""

    async def idle() -> bool:
        for name in names:
            info = await runtime.js.consumer_info(runtime.stream, name)
            if info.num_pending or info.num_ack_pending:
                return False
        return True

    await wait_until(idle, timeout, f"{', '.join(names)} idle")


async def count_on(runtime: Runtime, subject: str) -> int:
    """How many events the stream holds on `subject` (wildcards allowed)."""
    info = await runtime.js.stream_info(runtime.stream, subjects_filter=subject)
    return sum((info.state.subjects or {}).values())


async def last_on(runtime: Runtime, subject: str) -> dict[str, Any]:
    msg = await runtime.js.get_last_msg(runtime.stream, subject)
    assert msg.data is not None
    data: dict[str, Any] = json.loads(msg.data)
    return data
