"""The email copy of an inbound SMS: a read-only notification in text and HTML.

Written straight to the bytes SMTP sends: the message is always the same shape (a few
headers, two UTF-8 parts), and Python's `email` package, which builds and then flattens
a tree of header objects, cost more than all the rest of a delivery. Its header
machinery is still used, once per distinct value, for a header that is not short plain
ASCII (folding, RFC 2047 encoding).
"""

from __future__ import annotations

import base64
import binascii
import html
from collections.abc import Sequence
from dataclasses import dataclass
from email.policy import SMTP
from email.utils import format_datetime
from functools import lru_cache

from pbxsms.core.plugin_api import InboundMessage

READ_ONLY_NOTE = ("This is a read-only copy of a text message. Replies to this email are "
                  "not delivered: answer from the mobile app.")

# RFC 5322: header lines of at most 78 characters; no line longer than 998.
_LINE = 78
_MAX_LINE = 998
_CRLF = "\r\n"


def message_id(message: InboundMessage, sender: str) -> str:
    """`<id.sms@domain>`: derived from our id, so every copy of a message has the same one
    and mail clients recognise a repeat."""
    domain = sender.rpartition("@")[2].strip(" >") or "pbxsms.invalid"
    return f"<{message.id}.sms@{domain}>"


@dataclass(frozen=True)
class Attachment:
    """A file attached to the email (an MMS picture)."""

    filename: str
    content_type: str
    data: bytes


def compose(message: InboundMessage, sender: str, recipients: list[str],
            attachments: Sequence[Attachment] = (), links: Sequence[str] = (),
            notes: Sequence[str] = ()) -> bytes:
    """The email for `message`, ready for SMTP `DATA` (CRLF line ends); ValueError when
    a header value cannot be written. An MMS's pictures come as `attachments`, or as
    `links` past the size limit; `notes` say what could not be attached."""
    route = message.route
    number = message.to
    extension = f" (extension {route.extension})" if route and route.extension else ""
    received = message.received_at.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    # Derived from our id; a part that contains it is quoted-printable (see `_part`).
    boundary = f"=_pbxsms_{message.id}_="

    extras = [*notes, *links]
    text = (f"New text message\n\n"
            f"From: {message.from_}\n"
            f"To: {number}{extension}\n"
            f"Received: {received}\n\n"
            f"{message.body}\n\n"
            + "".join(f"{line}\n" for line in extras) + ("\n" if extras else "")
            + f"-- \n{READ_ONLY_NOTE}\n")
    rich = ("<!DOCTYPE html>\n<html><body>\n"
            "<p><strong>New text message</strong></p>\n"
            "<table>\n"
            f"<tr><td>From:</td><td>{html.escape(message.from_)}</td></tr>\n"
            f"<tr><td>To:</td><td>{html.escape(number + extension)}</td></tr>\n"
            f"<tr><td>Received:</td><td>{html.escape(received)}</td></tr>\n"
            "</table>\n"
            f'<p style="white-space: pre-wrap">{html.escape(message.body)}</p>\n'
            + "".join(f"<p>{html.escape(note)}</p>\n" for note in notes)
            + "".join(f'<p><a href="{html.escape(link)}">{html.escape(link)}</a></p>\n'
                      for link in links) +
            f'<hr><p style="color: #666"><small>{html.escape(READ_ONLY_NOTE)}</small></p>\n'
            "</body></html>\n")
    parts = [
        header("Subject", f"SMS from {message.from_} to {number}"),
        header("From", sender),
        header("To", ", ".join(recipients)),
        header("Date", format_datetime(message.received_at)),
        header("Message-ID", message_id(message, sender)),
        # Not a person writing: auto-responders (out of office) must not answer it.
        "Auto-Submitted: auto-generated\r\n",
        "X-Auto-Response-Suppress: All\r\n",
        header("X-PBXSMS-Message-Id", message.id),
        "MIME-Version: 1.0\r\n",
    ]
    alternative = [
        f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n',
        _CRLF,
        f"--{boundary}\r\n", _part("plain", text, boundary),
        f"--{boundary}\r\n", _part("html", rich, boundary),
        f"--{boundary}--\r\n",
    ]
    if not attachments:
        return "".join(parts + alternative).encode("ascii")
    # Base64 lines hold no "=_" run, so the boundaries cannot occur in the content.
    mixed = f"=_pbxsms_mixed_{message.id}_="
    parts += [f'Content-Type: multipart/mixed;\r\n boundary="{mixed}"\r\n', _CRLF,
              f"--{mixed}\r\n", *alternative]
    for attachment in attachments:
        parts += [f"--{mixed}\r\n", _attachment(attachment)]
    parts.append(f"--{mixed}--\r\n")
    return "".join(parts).encode("ascii")


def _attachment(attachment: Attachment) -> str:
    encoded = base64.encodebytes(attachment.data).decode("ascii").replace("\n", _CRLF)
    name = attachment.filename
    if not (name.isascii() and name.isprintable() and '"' not in name):
        raise ValueError("attachment name is not plain ASCII")
    return (f"Content-Type: {attachment.content_type}\r\n"
            "Content-Transfer-Encoding: base64\r\n"
            f'Content-Disposition: attachment; filename="{name}"\r\n\r\n{encoded}')


def header(name: str, value: str) -> str:
    """`Name: value` and CRLF; plain when short printable ASCII, else folded and encoded
    by the `email` package (once per distinct header)."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name} contains a line break")
    if value.isascii() and value.isprintable() and len(name) + 2 + len(value) <= _LINE:
        return f"{name}: {value}{_CRLF}"
    return _folded(name, value)


@lru_cache(maxsize=1024)
def _folded(name: str, value: str) -> str:
    folded: str = SMTP.header_factory(name, value).fold(policy=SMTP)
    try:
        folded.encode("ascii")
    except UnicodeEncodeError as error:
        raise ValueError(f"{name} cannot be written in ASCII: {error}") from error
    return folded


def _part(subtype: str, content: str, boundary: str) -> str:
    """One UTF-8 text part: 7-bit when it is ASCII within SMTP's line limit (and cannot
    hold the boundary), else quoted-printable, which keeps mostly-ASCII text readable."""
    lines = content.splitlines()
    body = _CRLF.join(lines) + _CRLF
    if content.isascii() and all(len(line) <= _MAX_LINE for line in lines) \
            and boundary not in content:
        encoding = "7bit"
    else:
        # Encodes every "=", so the boundary cannot occur in the result.
        encoding = "quoted-printable"
        body = binascii.b2a_qp(body.encode("utf-8"), istext=True).decode("ascii")
    return (f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
            f"Content-Transfer-Encoding: {encoding}\r\n\r\n{body}")
