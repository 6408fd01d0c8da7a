"""Delivering inbound messages to people (mobile app, email): once per message and recipient.

A channel consumer may see the same message many times: a retry, a redelivery after a
crash, an operator's replay, a second instance. The ledger (core/inbound/ledger.py) keeps
each settled delivery in the message's status record, so none of these reaches a person
twice; only a delivery whose record was lost in a crash may repeat. `report` publishes the
outcome of every attempt as a status event for the channel, with the ledger entries it
settles in the same record write.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from pydantic import ValidationError

from pbxsms.bus.consumer import Delivery, Permanent, Retry
from pbxsms.bus.publish import PublishError
from pbxsms.core.health import metrics
from pbxsms.core.inbound.ledger import PATIENCE, patiently
from pbxsms.core.model.events import InboundMessage, State, StatusEvent, utcnow
from pbxsms.core.stores.status import Settled

if TYPE_CHECKING:
    from pbxsms.core.serve.runtime import Runtime

log = logging.getLogger("pbxsms.deliveries")


def read_inbound(delivery: Delivery) -> InboundMessage:
    """The inbound message of a delivery; an unreadable one is dead-lettered at once."""
    try:
        return InboundMessage.model_validate_json(delivery.data)
    except ValidationError as error:
        raise Permanent(f"not an inbound message: {error}") from error


async def report(runtime: Runtime, message: InboundMessage, channel: str, state: State,
                 attempt: int | None, reason: str | None = None,
                 provider_message_id: str | None = None,
                 details: dict[str, Any] | None = None,
                 stream_seq: int | None = None,
                 settled: Mapping[str, Settled] | None = None) -> None:
    """Publish this attempt's outcome on `sms.status.<id>` and count it; `stream_seq`
    (the delivery's) lets the operator's API find the message's text again. `settled`:
    ledger entries (`Ledger.entry`) stored in the same write of the message's record,
    which is then retried for up to `ledger.PATIENCE` seconds.

    A status that cannot be stored makes the attempt a Retry: once its ledger entries
    are stored they keep the delivery itself from repeating, so only the status event
    is published again.
    """
    metrics.labelled(metrics.DELIVERIES, channel, state.value).inc()
    if state is State.DELIVERED:
        waited = (utcnow() - message.received_at).total_seconds()
        metrics.labelled(metrics.DELIVERY_LATENCY, channel).observe(max(waited, 0.0))
    event = StatusEvent(id=message.id, direction="inbound", state=state, channel=channel,
                        reason=reason, attempt=attempt, provider_message_id=provider_message_id,
                        sender_type=message.sender_type,
                        domain=message.route.domain if message.route else None,
                        details=details or {}, stream_seq=stream_seq)
    try:
        if settled:
            await patiently(lambda: runtime.publish_status(event, settled=settled),
                            PATIENCE, channel, message.id)
        else:
            await runtime.publish_status(event)
    except PublishError as error:
        raise Retry(f"{channel} status not stored: {error}") from error


async def fail_delivery(runtime: Runtime, message: InboundMessage, channel: str,
                         delivery: Delivery, failure: Retry | Permanent,
                         details: dict[str, Any] | None = None,
                         settled: Mapping[str, Settled] | None = None) -> NoReturn:
    """Publish `retrying`, or `failed` when no attempt is left, then re-raise `failure`
    for the consumer runner (backoff, or the dead letter with the same reason).
    `settled`: the ledger entries of the recipients this attempt did settle."""
    final = isinstance(failure, Permanent) or delivery.last_attempt
    state = State.FAILED if final else State.RETRYING
    try:
        await report(runtime, message, channel, state, delivery.attempt, failure.reason,
                     details=details, stream_seq=delivery.stream_seq, settled=settled)
    except Retry as error:
        if settled:
            # Settled recipients not recorded: retried, as any lost ledger write was.
            raise
        # The delivery's own failure is what counts; the runner still retries or
        # dead-letters it, and the dead letter carries the reason.
        log.warning("%s: %s", channel, error.reason, extra={"msg_id": message.id})
    raise failure
