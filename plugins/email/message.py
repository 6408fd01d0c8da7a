"""The email copy of an inbound SMS: a read-only notification in text and HTML."""

from __future__ import annotations

import html
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import default
from email.utils import format_datetime

from pbxsms.core.events import InboundMessage

READ_ONLY_NOTE = ("This is a read-only copy of a text message. Replies to this email are "
                  "not delivered: answer from the mobile app.")


class _CachingRegistry(HeaderRegistry):
    """The standard header classes, built once: the stock registry makes a new class
    (`type(...)`) for every header of every message, a third of an email's cost."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        found = self._classes.get(key)
        if found is None:
            found = self._classes[key] = super().__getitem__(name)
        return found


# The default policy (what EmailMessage uses), with the caching registry.
POLICY = default.clone(header_factory=_CachingRegistry())


def message_id(message: InboundMessage, sender: str) -> str:
    """`<id.sms@domain>`: derived from our id, so every copy of a message has the same one
    and mail clients recognise a repeat."""
    domain = sender.rpartition("@")[2].strip(" >") or "pbxsms.invalid"
    return f"<{message.id}.sms@{domain}>"


def compose(message: InboundMessage, sender: str, recipients: list[str]) -> EmailMessage:
    """The email for `message`; ValueError when a header value cannot be written."""
    route = message.route
    number = message.to
    extension = f" (extension {route.extension})" if route and route.extension else ""
    received = message.received_at.strftime("%Y-%m-%d %H:%M:%S %Z").strip()

    email = EmailMessage(policy=POLICY)
    email["Subject"] = f"SMS from {message.from_} to {number}"
    email["From"] = sender
    email["To"] = ", ".join(recipients)
    email["Date"] = format_datetime(message.received_at)
    email["Message-ID"] = message_id(message, sender)
    # Not a person writing: auto-responders (out of office) must not answer it.
    email["Auto-Submitted"] = "auto-generated"
    email["X-Auto-Response-Suppress"] = "All"
    email["X-PBXSMS-Message-Id"] = message.id

    email.set_content(
        f"New text message\n\n"
        f"From: {message.from_}\n"
        f"To: {number}{extension}\n"
        f"Received: {received}\n\n"
        f"{message.body}\n\n"
        f"-- \n{READ_ONLY_NOTE}\n")
    text = html.escape(message.body)
    email.add_alternative(
        "<!DOCTYPE html>\n<html><body>\n"
        "<p><strong>New text message</strong></p>\n"
        "<table>\n"
        f"<tr><td>From:</td><td>{html.escape(message.from_)}</td></tr>\n"
        f"<tr><td>To:</td><td>{html.escape(number + extension)}</td></tr>\n"
        f"<tr><td>Received:</td><td>{html.escape(received)}</td></tr>\n"
        "</table>\n"
        f'<p style="white-space: pre-wrap">{text}</p>\n'
        f'<hr><p style="color: #666"><small>{html.escape(READ_ONLY_NOTE)}</small></p>\n'
        "</body></html>\n", subtype="html")
    return email
