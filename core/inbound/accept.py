"""Accepting what providers push to us: inbound messages and delivery receipts.

Provider plugins parse their webhooks; this module does the rest, the same for every
provider: give the message its id, route it, store it durably on JetStream, count it.
A webhook answers 200 only after these functions return, because only then is the event
stored. `PublishError` means it is not known to be stored: answer 503 so the provider
retries; the retry carries the same dedupe key and never becomes a second event.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from pbxsms.bus.publish import PublishError
from pbxsms.core.health import metrics
from pbxsms.core.inbound.routing import publish_inbound
from pbxsms.core.model.events import InboundMessage, State, StatusEvent, utcnow
from pbxsms.core.refusal import Refusal
from pbxsms.core.serve.runtime import Runtime

log = logging.getLogger("pbxsms.inbound")

# A receipt's lookup of our id must not hold the webhook much longer than the publish does.
LOOKUP_TIMEOUT = 2.0
# How often a receipt that came before its message's acceptance was stored looks again.
LOOKUP_INTERVAL = 0.05


def content_key(message: InboundMessage) -> str:
    """A dedupe key from the content, for providers that sent no message id.

    The day it came (UTC) is part of it: the same text sent again after the dedupe window
    is another message, and must not take the id (and the delivered ledger) of the first.
    """
    content = [message.from_, message.to, message.body,
               message.sent_at.isoformat() if message.sent_at else "",
               message.received_at.astimezone(UTC).date().isoformat()]
    digest = hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()
    return f"{message.provider}:sha256-{digest[:40]}"


def our_id(text: str | None) -> str | None:
    """`text` as one of our message ids (a UUID, lower case), or None when it is not one."""
    if not text:
        return None
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        return None


@dataclass(frozen=True)
class Accepted:
    """An event stored on JetStream: our id, its stream sequence, and whether it was a repeat."""

    id: str
    seq: int
    duplicate: bool


async def accept_inbound(runtime: Runtime, message: InboundMessage,
                         dedupe_key: str) -> Accepted:
    """Store `message` once per `dedupe_key` on `sms.inbound.<provider>`.

    Fills in the message's `id`, `route` and `reply_to_id` (a webhook builds a new
    message for each request). Returns after the PubAck; raises PublishError when not
    stored (answer 503).
    """
    provider = message.provider
    _check_age(runtime, message)
    if message.reply_to_id is None and message.reply_to_provider_id:
        message.reply_to_id = await _reply_to(runtime, provider, message.reply_to_provider_id)
    try:
        runtime.require_bus()
        # Routes by the `to` number (or stores it as unroutable) and sets our id.
        published = await publish_inbound(runtime, message, dedupe_key)
    except PublishError as error:
        metrics.WEBHOOKS.labels(provider, "inbound", "failed").inc()
        log.warning("inbound %s message not stored, answering 503 so it is retried: %s",
                    provider, error, extra={"msg_id": message.id})
        raise
    result = "duplicate" if published.duplicate else "accepted"
    metrics.labelled(metrics.WEBHOOKS, provider, "inbound", result).inc()
    log.info("inbound %s message %s (%s id %s) to %s", provider, result, provider,
             message.provider_message_id or "-", message.to, extra={"msg_id": message.id})
    log.debug("inbound message %s is from %s", message.id, message.from_)
    return Accepted(message.id, published.seq, published.duplicate)


def _check_age(runtime: Runtime, message: InboundMessage) -> None:
    """Refusal 422 for a message sent longer ago than the stream keeps events: its
    first delivery may be forgotten, and taking it would deliver it again."""
    max_age = runtime.config.file.bus.max_age
    if message.sent_at is not None and (utcnow() - message.sent_at).total_seconds() > max_age:
        log.warning("inbound %s message %s refused: sent %s, before the retention of %g s",
                    message.provider, message.provider_message_id or "-",
                    message.sent_at.isoformat(), max_age)
        raise Refusal(422, f"sent at {message.sent_at.isoformat()}, longer ago than this "
                           f"gateway keeps messages (`[bus] max_age`): not taken, as it "
                           f"may have been delivered already", field="timestamp")


async def _reply_to(runtime: Runtime, provider: str, provider_message_id: str) -> str | None:
    """Our id of the outbound message replied to; best effort, it never blocks acceptance."""
    if not runtime.bus_connected:  # a read cannot be buffered: fail fast
        return None
    try:
        async with asyncio.timeout(LOOKUP_TIMEOUT):
            return await runtime.status.find_by_provider_id(provider, provider_message_id)
    except Exception as error:  # the publish that follows reports a real outage
        log.debug("reply lookup of %s id %s failed: %s", provider, provider_message_id, error)
        return None


@dataclass(frozen=True)
class Receipt:
    """A provider's delivery report about one of our outbound messages."""

    provider: str
    provider_message_id: str
    state: State
    id_hint: str | None = None  # our id as the provider echoed it (ClickSend: custom_string)
    reason: str | None = None
    error_code: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


async def accept_receipt(runtime: Runtime, receipt: Receipt, dedupe_key: str,
                         wait: float = 0.0) -> Accepted | None:
    """Publish the receipt as a status event of our message; None when it is not ours.

    Our id comes from the provider-id index that the `accepted` status fills: the
    provider's echo of our id (`id_hint`) is never trusted alone, since anyone can write
    any id there. That index is written just after the provider answered the send, so a
    provider that echoes nothing of ours and reports at once (Telnyx) can be faster than
    it: `wait` is how long to keep looking before calling the receipt unmatched. An
    unmatched receipt is counted (`unmatched`) and logged; the status store keeps final
    states, so a late non-final receipt changes nothing. Raises PublishError when the
    event (or the lookup) cannot be done now (answer 503), and when the hinted message
    has no provider id recorded yet (checked on the retry).
    """
    provider = receipt.provider
    try:
        runtime.require_bus()
        message_id = (await _find(runtime, receipt, wait)
                      or await _match_hint(runtime, receipt))
        if message_id is None:
            metrics.WEBHOOKS.labels(provider, "receipt", "unmatched").inc()
            log.warning("%s receipt for %s id %s (%s) matches no message of ours; "
                        "nothing recorded", provider, provider, receipt.provider_message_id,
                        receipt.state.value)
            return None
        status = StatusEvent(id=message_id, direction="outbound", state=receipt.state,
                             channel=provider, reason=receipt.reason,
                             provider_message_id=receipt.provider_message_id,
                             error_code=receipt.error_code, details=receipt.details)
        published = await runtime.publish_status(status, key=f"status:{message_id}:{dedupe_key}")
    except PublishError as error:
        metrics.WEBHOOKS.labels(provider, "receipt", "failed").inc()
        log.warning("%s receipt for %s id %s not stored, answering 503 so it is retried: %s",
                    provider, provider, receipt.provider_message_id, error)
        raise
    result = "duplicate" if published.duplicate else "accepted"
    metrics.labelled(metrics.WEBHOOKS, provider, "receipt", result).inc()
    log.info("%s receipt %s: %s", provider, result, receipt.state.value,
             extra={"msg_id": message_id})
    return Accepted(message_id, published.seq, published.duplicate)


async def _find(runtime: Runtime, receipt: Receipt, wait: float = 0.0) -> str | None:
    deadline = time.monotonic() + wait
    while True:
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT):
                found = await runtime.status.find_by_provider_id(receipt.provider,
                                                                 receipt.provider_message_id)
        except Exception as error:  # not knowing whether it is ours is an outage, not a "no"
            raise PublishError(f"cannot look up {receipt.provider} id "
                               f"{receipt.provider_message_id}: {error!r}") from error
        if found is not None or time.monotonic() >= deadline:
            return found
        await asyncio.sleep(LOOKUP_INTERVAL)


async def _match_hint(runtime: Runtime, receipt: Receipt) -> str | None:
    """The message `receipt` names (`id_hint`) when its record holds the receipt's
    provider id (the index lags the record a moment), else None.

    While that record has no provider id yet (the receipt overtook the `accepted`
    status), keep looking for `LOOKUP_TIMEOUT`, then PublishError: come back later.
    """
    hinted = our_id(receipt.id_hint)
    if hinted is None:
        return None
    deadline = time.monotonic() + LOOKUP_TIMEOUT
    while True:
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT):
                record = await runtime.status.get(hinted)
        except Exception as error:
            raise PublishError(f"cannot look up message {hinted}: {error!r}") from error
        if record is None or record.direction != "outbound":
            return None
        if record.provider_message_id == receipt.provider_message_id:
            return hinted
        if record.provider_message_id is not None or record.state.final:
            return None  # another message of the provider's: not this receipt's
        if time.monotonic() >= deadline:
            raise PublishError(f"message {hinted} has no {receipt.provider} id recorded "
                               "yet")
        await asyncio.sleep(LOOKUP_INTERVAL)
