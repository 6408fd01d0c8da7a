"""Texts from the extensions' SIP phones to outside numbers: sent as SMS, like app replies.

The chatplan line of docs/freeswitch.md fires each such SIP MESSAGE as a `MESSAGE` event.
A plain text from an extension that owns numbers becomes an `sms.outbound` request from
the number the customer last texted that extension (the same rule as the app's replies).
Its id derives from FreeSWITCH's Core-UUID and the event's sequence, so several gateway
instances listening to the same FreeSWITCH send it once.

Not texts, ignored: IMDN and other XML notifications (`message/imdn+xml`,
`application/im-iscomposing+xml`, an XML body), empty bodies, delivery reports and our own
messages echoed back. What cannot be sent (an unknown extension, not a phone number, the
bus away) is logged as a warning and counted in
`pbxsms_webhooks_total{provider="freeswitch",kind="message",result=...}`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING

from pbxsms.bus.publish import PublishError
from pbxsms.core.health import metrics
from pbxsms.core.model.events import OutboundRequest, new_id
from pbxsms.core.model.numbers import NumberSettings, hostname
from pbxsms.core.model.phone import InvalidNumber, to_e164
from pbxsms.core.stores.numbers import NoSender
from pbxsms.plugins.freeswitch.esl import Event
from pbxsms.plugins.freeswitch.link import ATTEMPT_HEADER, ID_HEADER

if TYPE_CHECKING:
    from pbxsms.core.serve.runtime import Runtime

log = logging.getLogger("pbxsms.freeswitch.replies")

# Fixed forever: reply ids must stay the same across versions and instances.
REPLY_NAMESPACE = uuid.UUID("0c7d52b1-3a5e-4f0b-9a51-7e2f4d8c6b13")
SOURCE = "freeswitch"
# Headers that mark a delivery outcome rather than a text (the core and mod_sms add them).
_REPORT_HEADERS = ("Delivery-Failure", "Delivery-Result-Code", "Nonblocking-Delivery",
                   ID_HEADER, ATTEMPT_HEADER)
PUBLISH_PATIENCE = 30.0


def reply_id(event: Event) -> str:
    """Our id of a phone's text: the same for every instance that saw the event."""
    core = event.get("Core-UUID")
    sequence = event.get("Event-Sequence")
    if core and sequence:
        return str(uuid.uuid5(REPLY_NAMESPACE, f"{core}\n{sequence}"))
    return new_id()


def not_a_text(event: Event) -> str | None:
    """Why this MESSAGE event is no text to send, or None when it is one."""
    if any(event.get(header) is not None for header in _REPORT_HEADERS):
        return "report"
    if (event.get("proto") or "sip") != "sip":
        return "other"
    kind = (event.get("type") or "text/plain").split(";")[0].strip().lower()
    if kind != "text/plain":
        return "notification"
    body = (event.body or "").lstrip()
    if body.startswith("<?xml") or body.startswith("<imdn"):
        return "notification"
    if not body.strip():
        return "empty"
    return None


class PhoneReplies:
    """Turns MESSAGE events into outbound requests (in tasks: the ESL reader never waits)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._tasks: set[asyncio.Task[None]] = set()

    def on_message(self, event: Event) -> None:
        task = asyncio.create_task(self.handle(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Let replies being stored finish (at shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=PUBLISH_PATIENCE)

    async def handle(self, event: Event) -> None:
        reason = not_a_text(event)
        if reason is not None:
            _count("ignored")
            log.debug("MESSAGE event ignored: %s", reason)
            return
        extension = (event.get("from_user") or "").strip()
        domain = hostname(event.get("from_host") or "") or None
        target = (event.get("to_user") or "").strip()
        try:
            customer = to_e164(target, self.runtime.config.core.default_region)
        except InvalidNumber as error:
            _count("invalid")
            log.warning("a text from extension %s to %r not sent: not a phone number (%s)",
                        extension or "?", target[:40], error)
            return
        try:
            sender = await self._sender(extension, domain, customer)
        except NoSender as error:
            _count("invalid")
            log.warning("a text from extension %s to %s not sent: %s", extension or "?",
                        customer, error)
            return
        outbound = OutboundRequest(id=reply_id(event), from_=sender.number,
                                   extension=extension, to=customer, body=event.body or "",
                                   source=SOURCE)
        await self._publish(outbound)

    async def _sender(self, extension: str, domain: str | None,
                      customer: str) -> NumberSettings:
        """The number the customer last texted this extension (of the phone's domain)."""
        if not extension:
            raise NoSender("the MESSAGE event names no sending extension (from_user)")
        numbers = self.runtime.numbers
        domains = {record.domain for record in numbers.numbers_of(extension)}
        if domain not in domains:
            if len(domains) != 1:
                raise NoSender(f"extension {extension}@{domain} has no enabled number in "
                               "the message settings")
            domain = next(iter(domains))  # one tenant: the phone's host may be an address
        return await numbers.sender_for(extension, domain, customer)

    async def _publish(self, outbound: OutboundRequest) -> None:
        """Store it, trying again while the bus is away: FreeSWITCH will not resend."""
        deadline = asyncio.get_running_loop().time() + PUBLISH_PATIENCE
        pause = 0.2
        while True:
            try:
                published = await self.runtime.publish("sms.outbound", outbound, outbound.id)
            except PublishError as error:
                if asyncio.get_running_loop().time() + pause >= deadline:
                    _count("unavailable")
                    log.error("a text from extension %s to %s was lost: not stored (%s)",
                              outbound.extension, outbound.to, error,
                              extra={"msg_id": outbound.id})
                    return
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
                continue
            _count("duplicate" if published.duplicate else "accepted")
            log.info("text from extension %s queued as %s%s", outbound.extension, outbound.id,
                     " (repeat)" if published.duplicate else "", extra={"msg_id": outbound.id})
            return


def _count(result: str) -> None:
    metrics.WEBHOOKS.labels(SOURCE, "message", result).inc()
