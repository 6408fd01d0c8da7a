"""The `deliver-email` consumer: a read-only copy of each inbound SMS to the number's
addresses, once per address.

Each address is settled on its own: an SMTP server that is down or answers 4xx is tried
again with backoff until it comes back; a 5xx for one address fails that address (status
and dead letter name it) while the others are delivered, and never sent again.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Literal

import aiosmtplib

from pbxsms.core.plugin_api import (
    MEDIA_EXTENSIONS,
    Delivery,
    InboundMessage,
    Ledger,
    NoLinks,
    Permanent,
    Retry,
    Runtime,
    Settled,
    State,
    awaiting_media,
    fail_delivery,
    media_store,
    read_inbound,
    refused_note,
    report,
    signed_link,
)
from pbxsms.plugins.email.connections import SmtpPool, pool_key
from pbxsms.plugins.email.message import Attachment, compose
from pbxsms.plugins.email.settings import EmailSettings

log = logging.getLogger("pbxsms.email")

CHANNEL = "email"
CONSUMER = "deliver-email"

# An address we can put in RCPT TO: no spaces, brackets or line breaks, one @.
_ADDRESS = re.compile(r"^[^\s<>@,;]+@[^\s<>@,;]+$")


@dataclass(frozen=True)
class AddressResult:
    """One address after one attempt."""

    state: Literal["delivered", "failed", "retry"]
    reason: str | None = None


class EmailDelivery:
    """Consumer handler for `sms.inbound.>`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.ledger = Ledger(runtime)
        self._pool: tuple[tuple[object, ...], SmtpPool] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def pool(self, settings: EmailSettings) -> SmtpPool:
        """The connections for these settings; a reload that changes them starts anew."""
        key = pool_key(settings)
        if self._pool is None or self._pool[0] != key:
            if self._pool is not None:
                old = self._pool[1]
                task = asyncio.create_task(old.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            self._pool = (key, SmtpPool(settings))
        return self._pool[1]

    async def close(self) -> None:
        """Close the SMTP connections (at shutdown, after the consumer stopped)."""
        if self._pool is not None:
            await self._pool[1].close()
            self._pool = None
        if self._closing:
            await asyncio.wait(set(self._closing))

    async def handle(self, delivery: Delivery) -> None:
        message = read_inbound(delivery)
        settings = self.runtime.config.plugin("email", EmailSettings)
        route = message.route
        if route is None:
            return  # unroutable: its `unroutable` status already accounts for it
        if awaiting_media(message):
            return  # delivered whole from its `.media` follow-up (core/media/inbound.py)
        addresses = list(dict.fromkeys(a.strip() for a in route.email
                                       if a.strip()))
        if not addresses:
            await report(self.runtime, message, CHANNEL, State.SKIPPED, delivery.attempt,
                         f"no email address in the message settings of {message.to}",
                         stream_seq=delivery.stream_seq)
            return
        if not settings.host:
            await report(self.runtime, message, CHANNEL, State.SKIPPED, delivery.attempt,
                         "PBXSMS_SMTP_HOST unset", stream_seq=delivery.stream_seq)
            return

        outcomes: dict[str, AddressResult] = {}
        attempts: list[int] = []
        pending: list[str] = []
        ledger = await self.ledger.get_many(CHANNEL, message.id, addresses,
                                            message.received_at)
        for address, settled in zip(addresses, ledger, strict=True):
            if settled is not None:
                outcomes[address] = AddressResult(settled.state, settled.reason)
                attempts.append(settled.attempt)
            elif not _ADDRESS.match(address):
                outcomes[address] = AddressResult("failed", "not an email address")
            else:
                pending.append(address)

        settles: dict[str, Settled] = {}
        if pending:
            valid = [a for a in addresses if _ADDRESS.match(a)]
            attachments, links, notes = await self._media(message, settings)
            try:
                email = compose(message, settings.from_, valid, attachments, links, notes)
            except ValueError as error:
                await fail_delivery(self.runtime, message, CHANNEL, delivery,
                                     Permanent(f"cannot write the email: {error}"))
            sent = await send(self.pool(settings), settings.from_, email, pending)
            for address, outcome in sent.items():
                outcomes[address] = outcome
                if outcome.state != "retry":
                    settles |= self.ledger.entry(CHANNEL, message.id, Settled(
                        state=outcome.state, attempt=delivery.attempt, reason=outcome.reason),
                        recipient=address)
                    attempts.append(delivery.attempt)
            log.info("email copy of %s: %s", message.id, ", ".join(
                f"{outcome.state}" for outcome in sent.values()), extra={"msg_id": message.id})
        # The ledger entries go with the status, in one write of the message's record.
        # The message is acknowledged only once it is stored.
        await self._conclude(message, delivery, outcomes,
                             max(attempts, default=delivery.attempt), settles)

    async def _media(self, message: InboundMessage, settings: EmailSettings
                     ) -> tuple[list[Attachment], list[str], list[str]]:
        """The message's pictures as attachments while they fit the total, then as links;
        notes for what could be neither."""
        attachments: list[Attachment] = []
        links: list[str] = []
        notes = [note] if (note := refused_note(message)) else []
        room = settings.attachments_max_bytes
        for number, item in enumerate(message.media, 1):
            name = f"attachment-{number}.{MEDIA_EXTENSIONS.get(item.content_type, 'bin')}"
            if item.size <= room:
                found = await media_store(self.runtime).get(item.id)
                if found is not None:
                    attachments.append(Attachment(name, item.content_type, found[1]))
                    room -= item.size
                    continue
                notes.append(f"({name} has expired)")
                continue
            try:
                links.append(await signed_link(self.runtime, item))
            except NoLinks as error:
                notes.append(f"({name}: too large to attach, and no link: {error})")
        return attachments, links, notes

    async def _conclude(self, message: InboundMessage, delivery: Delivery,
                        outcomes: dict[str, AddressResult], attempt: int,
                        settled: dict[str, Settled]) -> None:
        """The channel's status from every address's outcome, stored with the ledger
        entries of the addresses settled now; raises Retry while an address waits,
        Permanent when one failed."""
        details = {"recipients": {address: outcome.state if outcome.reason is None
                                  else f"{outcome.state}: {outcome.reason}"
                                  for address, outcome in outcomes.items()}}
        waiting = {a: o for a, o in outcomes.items() if o.state == "retry"}
        failed = {a: o for a, o in outcomes.items() if o.state == "failed"}
        delivered = [a for a, o in outcomes.items() if o.state == "delivered"]
        if waiting:
            await fail_delivery(self.runtime, message, CHANNEL, delivery,
                                 Retry(_summary(waiting | failed, delivered)), details,
                                 settled)
        if failed:
            await fail_delivery(self.runtime, message, CHANNEL, delivery,
                                 Permanent(_summary(failed, delivered)), details, settled)
        await report(self.runtime, message, CHANNEL, State.DELIVERED, attempt, details=details,
                     stream_seq=delivery.stream_seq, settled=settled)


async def send(pool: SmtpPool, sender: str, email: bytes,
               recipients: list[str]) -> dict[str, AddressResult]:
    """One SMTP transaction to `recipients`; the outcome for each of them."""
    try:
        refused = await pool.sendmail(sender, recipients, email)
    except aiosmtplib.SMTPRecipientsRefused as error:
        return {item.recipient: _refused(item.code, item.message)
                for item in error.recipients}
    except aiosmtplib.SMTPDataError as error:
        # The message itself was refused, for everyone in this transaction.
        return dict.fromkeys(recipients, _refused(error.code, error.message))
    except aiosmtplib.SMTPResponseException as error:
        # Greeting, login or sender refused: the server or our settings, not an address.
        reason = f"SMTP server refused ({error.code} {_line(error.message)}): check " \
                 "PBXSMS_SMTP_*"
        return dict.fromkeys(recipients, AddressResult("retry", reason))
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
        reason = f"SMTP server unavailable: {type(error).__name__}: {_line(str(error))}"
        return dict.fromkeys(recipients, AddressResult("retry", reason))
    return {address: _refused(refused[address].code, refused[address].message)
            if address in refused else AddressResult("delivered") for address in recipients}


def _refused(code: int, text: str) -> AddressResult:
    reason = f"{code} {_line(text)}"
    return AddressResult("failed" if 500 <= code < 600 else "retry", reason)


def _line(text: str) -> str:
    return " ".join(text.split())[:200]


def _summary(problems: dict[str, AddressResult], delivered: list[str]) -> str:
    """`a@x, b@x: <reason>; c@x: <reason> (delivered to d@x)`: one line for the status
    and the dead letter."""
    by_reason: dict[str, list[str]] = {}
    for address, outcome in problems.items():
        by_reason.setdefault(outcome.reason or outcome.state, []).append(address)
    text = "; ".join(f"{', '.join(addresses)}: {reason}"
                     for reason, addresses in by_reason.items())
    return text + (f" (delivered to {', '.join(delivered)})" if delivered else "")
