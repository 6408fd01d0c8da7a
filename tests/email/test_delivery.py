"""`deliver-email`: the read-only email copy, once per address, through a real SMTP server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from email.message import EmailMessage

from pbxsms.core.model.events import State
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.support.delivery import (
    CUSTOMER,
    NUMBER,
    SENDER,
    bus_toml,
    consumers_idle,
    dead_letter,
    delivery_env,
    inject_inbound,
    routed_inbound,
    wait_channel,
)
from tests.support.gateway import Gateway
from tests.support.smtp import SmtpServer

StartGateway = Callable[..., Awaitable[Gateway]]


def parts(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    # Lines arrive with the wire's CRLF endings.
    plain: str = text.get_content()
    rich: str = html.get_content()
    return plain.replace("\r\n", "\n"), rich.replace("\r\n", "\n")


async def test_the_copy_is_a_read_only_notification(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer
) -> None:
    gateway = await start_gateway(toml=bus_toml(), env=delivery_env(app, smtp))
    body = "<b>Tom & Jerry</b> arrive at 5\nÇa va? 🙂"
    message = routed_inbound(body, emails=("desk@example.com", "boss@example.com"))
    await inject_inbound(gateway.runtime, message)

    status = await wait_channel(gateway.runtime, message.id, "email", State.DELIVERED)
    (mail,) = smtp.mailbox.mails
    assert sorted(mail.rcpt_tos) == ["boss@example.com", "desk@example.com"]
    assert mail.mail_from == SENDER
    email = mail.message
    assert email["Subject"] == f"SMS from {CUSTOMER} to {NUMBER}"
    assert email["From"] == SENDER
    assert email["Message-ID"] == f"<{message.id}.sms@pbx.example.com>"
    assert email["Auto-Submitted"] == "auto-generated"
    assert email["X-Auto-Response-Suppress"] == "All"
    text, html = parts(email)
    assert body in text and "(extension 201)" in text
    assert "read-only copy" in text and "read-only copy" in html
    assert "&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;" in html and "<b>Tom" not in html
    assert "Ça va? 🙂" in html
    assert status.channels["email"].attempt == 1

    # Delivered again (a redelivery, a replay): nobody gets a second copy.
    await inject_inbound(gateway.runtime, message, msg_id=f"replay:{message.id}")
    await consumers_idle(gateway.runtime, "deliver-email")
    assert len(smtp.mailbox.mails) == 1


async def test_one_connection_carries_successive_emails_and_a_lost_one_is_replaced(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer
) -> None:
    gateway = await start_gateway(toml=bus_toml(), env=delivery_env(app, smtp))
    for n in range(3):
        message = routed_inbound(f"message {n}")
        await inject_inbound(gateway.runtime, message)
        await wait_channel(gateway.runtime, message.id, "email", State.DELIVERED)
    assert len(smtp.mailbox.mails) == 3 and smtp.mailbox.connections == 1

    # The server restarts: the kept connection is gone, the next email takes a new one.
    await smtp.stop()
    await smtp.start()
    message = routed_inbound("after the restart")
    await inject_inbound(gateway.runtime, message)
    await wait_channel(gateway.runtime, message.id, "email", State.DELIVERED)
    assert len(smtp.mailbox.received_by("desk@example.com")) == 4
    assert smtp.mailbox.connections == 2


async def test_a_refused_address_fails_alone(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer
) -> None:
    smtp.mailbox.always["gone@example.com"] = "550 5.1.1 No such user"
    smtp.mailbox.next_replies["busy@example.com"] = ["451 4.3.0 Try again later"] * 2
    gateway = await start_gateway(toml=bus_toml(max_deliver=5), env=delivery_env(app, smtp))
    message = routed_inbound(emails=("desk@example.com", "gone@example.com", "busy@example.com"))
    await inject_inbound(gateway.runtime, message)

    status = await wait_channel(gateway.runtime, message.id, "email", State.FAILED)
    history = [h for h in status.history if h.channel == "email"]
    assert [(h.state, h.attempt) for h in history] == [
        (State.RETRYING, 1), (State.RETRYING, 2), (State.FAILED, 3)]
    assert history[0].reason == ("busy@example.com: 451 4.3.0 Try again later; "
                                 "gone@example.com: 550 5.1.1 No such user "
                                 "(delivered to desk@example.com)")
    reason = status.channels["email"].reason
    assert reason == ("gone@example.com: 550 5.1.1 No such user "
                      "(delivered to desk@example.com, busy@example.com)")
    letter = await dead_letter(gateway.runtime, "deliver-email")
    assert letter.reason == reason and letter.id == message.id
    # Each good address got exactly one copy, across three attempts.
    assert len(smtp.mailbox.received_by("desk@example.com")) == 1
    assert len(smtp.mailbox.received_by("busy@example.com")) == 1
    assert smtp.mailbox.received_by("gone@example.com") == []
    # The app push did not wait for any of it.
    await wait_channel(gateway.runtime, message.id, "mobileapp", State.DELIVERED)


async def test_without_address_or_smtp_host_it_is_skipped(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer
) -> None:
    gateway = await start_gateway(toml=bus_toml(), env=delivery_env(app, smtp))
    message = routed_inbound(emails=())
    await inject_inbound(gateway.runtime, message)
    status = await wait_channel(gateway.runtime, message.id, "email", State.SKIPPED)
    assert status.channels["email"].reason == (
        f"no email address in the message settings of {NUMBER}")
    await wait_channel(gateway.runtime, message.id, "mobileapp", State.DELIVERED)
    assert status.summary.startswith("email: skipped")

    await gateway.server.stop()
    unconfigured = await start_gateway(toml=bus_toml(),
                                       env=delivery_env(app, smtp, PBXSMS_SMTP_HOST=""))
    message = routed_inbound()
    await inject_inbound(unconfigured.runtime, message)
    status = await wait_channel(unconfigured.runtime, message.id, "email", State.SKIPPED)
    assert status.channels["email"].reason == "PBXSMS_SMTP_HOST unset"
    assert smtp.mailbox.mails == []
