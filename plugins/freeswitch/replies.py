"""Texts from the extensions' SIP phones to outside numbers: sent as SMS, like app replies.

The chatplan line of docs/freeswitch.md fires each such SIP MESSAGE as a `MESSAGE` event.
A plain text from an extension that owns numbers is taken as a send request the way the
API and the app's replies are (`queue_outbound`): checked, sent from the number the
customer last texted that extension, stored on `sms.outbound` with a `queued` status.
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

from pbxsms.core.plugin_api import (
    NoSender,
    OutboundRequest,
    Refusal,
    Runtime,
    metrics,
    new_id,
    queue_outbound,
)
from pbxsms.plugins.freeswitch.esl import Event
from pbxsms.plugins.freeswitch.link import ATTEMPT_HEADER, ID_HEADER

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
        target = (event.get("to_user") or "").strip()
        outbound = OutboundRequest(id=reply_id(event), extension=extension or None,
                                   to=target, body=event.body or "", source=SOURCE)
        try:
            host = (event.get("from_host") or "").strip().lower() or None
            duplicate = await self._queue(outbound, self._tenant(extension, host))
        except NoSender as error:
            self._refused(outbound, str(error))
            return
        except Refusal as refusal:
            if refusal.status != 503:
                self._refused(outbound, refusal.message)
                return
            _count("unavailable")
            log.error("a text from extension %s to %s was lost: %s", extension or "?",
                      target[:40], refusal.message, extra={"msg_id": outbound.id})
            return
        _count("duplicate" if duplicate else "accepted")

    def _tenant(self, extension: str, domain: str | None) -> str | None:
        """The tenant of the texting extension: the phone's SIP domain, or the one tenant
        the extension has numbers in (the phone's host may then be an address)."""
        if not extension:
            raise NoSender("the MESSAGE event names no sending extension (from_user)")
        domains = {record.domain for record in self.runtime.numbers.numbers_of(extension)}
        if domain in domains:
            return domain
        if len(domains) == 1:
            return next(iter(domains))
        raise NoSender(f"extension {extension}@{domain} has no enabled number in the "
                       "message settings")

    async def _queue(self, outbound: OutboundRequest, domain: str | None) -> bool:
        """`queue_outbound`, tried again while the bus is away (FreeSWITCH will not resend);
        True when the request was already stored."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PUBLISH_PATIENCE
        pause = 0.2
        while True:
            try:
                return (await queue_outbound(self.runtime, outbound, domain)).duplicate
            except Refusal as refusal:
                if refusal.status != 503 or loop.time() + pause >= deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    @staticmethod
    def _refused(outbound: OutboundRequest, why: str) -> None:
        _count("invalid")
        log.warning("a text from extension %s to %s not sent: %s", outbound.extension or "?",
                    outbound.to[:40], why, extra={"msg_id": outbound.id})


def _count(result: str) -> None:
    metrics.WEBHOOKS.labels(SOURCE, "message", result).inc()
