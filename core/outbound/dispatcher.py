"""The outbound dispatcher: durable consumer `outbound` on `sms.outbound`.

Per request: check it, skip it when it was already accepted (a redelivery), resolve the
sending number and provider, publish `sending`, hand it to the provider through the
batcher, then publish the outcome. Retries are JetStream redeliveries: `Retry` naks with
the provider's delay (e.g. `Retry-After`) or backoff, `Permanent` dead-letters.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import NoReturn

from pbxsms.bus.consumer import Delivery, Permanent, Retry
from pbxsms.bus.publish import PublishError
from pbxsms.core.health import metrics
from pbxsms.core.media.outbound import MediaInvalid
from pbxsms.core.media.outbound import resolve as resolve_media
from pbxsms.core.model.events import OutboundRequest, State, StatusEvent
from pbxsms.core.outbound.api import InvalidRequest, check_request, usable_id
from pbxsms.core.outbound.batcher import Batcher
from pbxsms.core.outbound.senders import UnroutableRequest, resolve_sender
from pbxsms.core.registry import OutboundMessage, Outcome, Provider, SendResult
from pbxsms.core.serve.runtime import Runtime

log = logging.getLogger("pbxsms.outbound")

CONSUMER = "outbound"
DONE = frozenset({State.ACCEPTED, State.SENT, State.DELIVERED})
REMEMBERED = 20_000
# Requests checked at once (status read, `sending` published): enough to hide the round
# trips, few enough that requests join batches in the order they came. Checking a whole
# pull at once would fill its batches at the same moment and send them together, with
# nothing checked while they are away (docs/performance.md).
CHECKING = 256


class Dispatcher:
    """Hands outbound requests to their providers and records every state change."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.batcher = Batcher()
        # Accepted here but maybe not yet recorded (the status publish can fail): a
        # redelivery re-publishes the acceptance instead of sending a second time. Kept as
        # JSON: bytes are not tracked by the garbage collector, and 20,000 live events
        # were (full collections took about half the CPU of a sending burst).
        self._accepted: OrderedDict[str, bytes] = OrderedDict()
        self._checking = asyncio.Semaphore(CHECKING)

    def max_in_flight(self) -> int:
        """Room for three full batches: one filling while one is being sent and one
        settled (its `accepted` published, its requests acked). With two, the next batch
        could not start filling until a sent one had settled."""
        batches = [3 * p.max_batch for p in self.runtime.providers.values()]
        return max([self.runtime.config.file.bus.max_in_flight, *batches])

    async def handle(self, delivery: Delivery) -> None:
        with self.batcher.incoming() as arrived:
            async with self._checking:
                checked = await self._check(delivery)
            if checked is None:
                return
            provider, message = checked
            arrived()
            result = await self.batcher.submit(provider, message)
        await self._settle(delivery, provider, message, result)

    async def _check(self, delivery: Delivery) -> tuple[Provider, OutboundMessage] | None:
        """The message and its provider, `sending` published; None when it was already
        accepted (a redelivery or a repeat), Permanent when it cannot be sent."""
        try:
            request = OutboundRequest.model_validate_json(delivery.data)
        except ValueError as error:
            metrics.OUTBOUND.labels("-", "invalid").inc()
            raise Permanent(f"not an outbound request: {error}") from error
        if not usable_id(request.id):
            metrics.OUTBOUND.labels("-", "invalid").inc()
            raise Permanent(f"unusable id {request.id!r}: use a UUID")
        if await self._already_accepted(request.id):
            return None
        try:
            request, count = check_request(request, self.runtime.config)
            sender, channel = await resolve_sender(self.runtime, request)
        except (InvalidRequest, UnroutableRequest) as error:
            await self._refuse(request, error)
        try:
            media = await resolve_media(self.runtime, request) if request.is_mms else []
        except MediaInvalid as error:
            await self._refuse(request, InvalidRequest(error.message, error.field or "media"),
                               channel)
        provider = self.runtime.providers[channel]
        message = OutboundMessage(id=request.id, from_=sender, to=request.to,
                                  body=request.body, segments=count.segments,
                                  media=tuple(media), subject=request.subject)
        await self._publish(self._event(message, channel, State.SENDING, delivery.attempt,
                                        details={"from": sender, "encoding": count.encoding},
                                        stream_seq=delivery.stream_seq))
        return provider, message

    async def _already_accepted(self, message_id: str) -> bool:
        remembered = self._accepted.get(message_id)
        if remembered is not None:
            # Its `accepted` may not be stored or folded yet: publish it (again).
            event = StatusEvent.model_validate_json(remembered)
            await self._publish(event)
            channel, provider_id = event.channel or "-", event.provider_message_id
        else:
            # Reads of a burst are pipelined by the Publisher: no batching needed here.
            record = await self.runtime.status.get(message_id)
            if record is None or not (record.provider_message_id or record.state in DONE):
                return False
            channel, provider_id = next(iter(record.channels), "-"), record.provider_message_id
        metrics.OUTBOUND.labels(channel, "duplicate").inc()
        log.info("outbound %s was already accepted (%s); not sending it again", message_id,
                 provider_id, extra={"msg_id": message_id})
        return True

    async def _refuse(self, request: OutboundRequest,
                      error: InvalidRequest | UnroutableRequest,
                      channel: str | None = None) -> NoReturn:
        channel, reason = channel or request.provider, error.message
        if isinstance(error, InvalidRequest):
            state, code, outcome = State.FAILED, "INVALID_REQUEST", "invalid"
        else:
            state, code, outcome = State.UNROUTABLE, None, "unroutable"
        metrics.OUTBOUND.labels(channel or "-", outcome).inc()
        log.warning("outbound %s %s: %s", request.id, state.value, reason,
                    extra={"msg_id": request.id})
        await self._publish(StatusEvent(id=request.id, direction="outbound", state=state,
                                        channel=channel, reason=reason, error_code=code))
        raise Permanent(reason)

    async def _settle(self, delivery: Delivery, provider: Provider, message: OutboundMessage,
                      result: SendResult) -> None:
        name = provider.name
        if result.outcome == Outcome.ACCEPTED:
            event = self._event(message, name, State.ACCEPTED, delivery.attempt,
                                provider_message_id=result.provider_message_id,
                                details=result.details)
            self._remember(event)
            metrics.OUTBOUND.labels(name, "accepted").inc()
            log.info("outbound %s accepted by %s (%s id %s)", message.id, name, name,
                     result.provider_message_id or "-", extra={"msg_id": message.id})
            await self._publish(event)
            return
        reason = _reason(result)
        ambiguous = result.outcome == Outcome.AMBIGUOUS
        if ambiguous and not provider.retry_ambiguous:
            metrics.OUTBOUND.labels(name, "unknown").inc()
            log.warning("outbound %s unknown: %s", message.id, reason,
                        extra={"msg_id": message.id})
            await self._status(message, name, State.UNKNOWN, delivery.attempt, reason=reason,
                               code=result.code)
            raise Permanent(f"unknown: {reason}")
        if result.outcome in (Outcome.RETRY, Outcome.AMBIGUOUS) and not delivery.last_attempt:
            metrics.OUTBOUND.labels(name, "retrying").inc()
            details = {"retry_in": result.retry_after} if result.retry_after else {}
            await self._status(message, name, State.RETRYING, delivery.attempt, reason=reason,
                               code=result.code, details=details)
            raise Retry(reason, delay=result.retry_after)
        if result.outcome in (Outcome.RETRY, Outcome.AMBIGUOUS):
            reason = f"gave up after {delivery.attempt} attempts: {reason}"
        metrics.OUTBOUND.labels(name, "failed").inc()
        metrics.OUTBOUND_FAILURES.labels(name, result.code or "-").inc()
        log.warning("outbound %s failed (%s): %s", message.id, result.code or "-", reason,
                    extra={"msg_id": message.id})
        # `details` say why for good, e.g. `opted_out` (the recipient replied STOP).
        await self._status(message, name, State.FAILED, delivery.attempt, reason=reason,
                           code=result.code, details=result.details)
        raise Permanent(f"{result.code}: {reason}" if result.code else reason)

    def _event(self, message: OutboundMessage, channel: str, state: State, attempt: int,
               reason: str | None = None, code: str | None = None,
               provider_message_id: str | None = None,
               details: Mapping[str, object] | None = None,
               stream_seq: int | None = None) -> StatusEvent:
        return StatusEvent(id=message.id, direction="outbound", state=state, channel=channel,
                           attempt=attempt, reason=reason, error_code=code,
                           provider_message_id=provider_message_id,
                           segments=message.segments, details=dict(details or {}),
                           stream_seq=stream_seq)

    async def _status(self, message: OutboundMessage, channel: str, state: State,
                      attempt: int, reason: str | None = None, code: str | None = None,
                      details: Mapping[str, object] | None = None) -> None:
        await self._publish(self._event(message, channel, state, attempt, reason, code,
                                        details=details))

    async def _publish(self, event: StatusEvent) -> None:
        try:
            await self.runtime.publish_status(event)
        except PublishError as error:
            # Redelivered later: an accepted message is remembered and not sent again.
            raise Retry(f"status {event.state.value} not stored: {error}") from error

    def _remember(self, event: StatusEvent) -> None:
        self._accepted[event.id] = event.to_json()
        while len(self._accepted) > REMEMBERED:
            self._accepted.popitem(last=False)


def _reason(result: SendResult) -> str:
    return result.reason or result.code or result.outcome.value
