"""The outbound dispatcher: durable consumer `outbound` on `sms.outbound`.

Per request: check it, skip it when it was already accepted (a redelivery), resolve the
sending number and provider, publish `sending`, hand it to the provider through the
batcher, then publish the outcome. Retries are JetStream redeliveries: `Retry` naks with
the provider's delay (e.g. `Retry-After`) or backoff, `Permanent` dead-letters.

A provider that refuses our account (PAUSED, e.g. a wrong key) does not use up attempts:
its messages are held by their handlers (the consumer runner keeps telling JetStream they
are in progress) and offered again after a reload or every `HOLD_POLL` seconds, until
`[outbound] hold_while_paused` after they were requested; only then do they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from typing import NoReturn

from pbxsms.bus.consumer import Delivery, Permanent, Retry
from pbxsms.bus.publish import PublishError
from pbxsms.core.config.durations import describe
from pbxsms.core.health import metrics
from pbxsms.core.media.outbound import MediaInvalid
from pbxsms.core.media.outbound import resolve as resolve_media
from pbxsms.core.model.events import OutboundRequest, State, StatusEvent, utcnow
from pbxsms.core.optout.recording import record_word
from pbxsms.core.outbound.api import (
    InvalidRequest,
    check_request,
    measure,
    refuse_opted_out,
    usable_id,
)
from pbxsms.core.outbound.batcher import Batcher
from pbxsms.core.outbound.senders import UnroutableRequest, resolve_sender
from pbxsms.core.registry import (
    OPTED_OUT,
    OutboundMessage,
    Outcome,
    Provider,
    SendResult,
    billing_of,
)
from pbxsms.core.serve.runtime import Runtime
from pbxsms.core.stores.optouts import OptOut
from pbxsms.core.stores.status import StatusRecord

log = logging.getLogger("pbxsms.outbound")

CONSUMER = "outbound"
DONE = frozenset({State.ACCEPTED, State.SENT, State.DELIVERED})
REMEMBERED = 20_000
# Requests checked at once (status read, `sending` published): enough to hide the round
# trips, few enough that requests join batches in the order they came. Checking a whole
# pull at once would fill its batches at the same moment and send them together, with
# nothing checked while they are away (docs/performance.md).
CHECKING = 256
# How often held messages are offered again while their provider is paused (a reload
# offers them at once): the provider answers PAUSED without calling out until its own
# retry interval has passed.
HOLD_POLL = 5.0


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
        # Ids of the messages held while their provider is paused, and the signal that
        # offers them again (set by a reload).
        self.held: set[str] = set()
        self._resume = asyncio.Event()

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
            provider, message, requested_at = checked
            arrived()
            result = await self.batcher.submit(provider, message)
        if result.outcome == Outcome.PAUSED:
            result = await self._hold(delivery, provider, message, requested_at, result)
        await self._settle(delivery, provider, message, result)

    def resume(self) -> None:
        """Offer the held messages again now (the settings were reloaded)."""
        self._resume.set()

    async def _hold(self, delivery: Delivery, provider: Provider, message: OutboundMessage,
                    requested_at: datetime, result: SendResult) -> SendResult:
        """Keep offering `message` while its provider is paused; the first other result,
        or FAILED once it has waited `hold_while_paused` since it was requested."""
        hold = self.runtime.config.file.outbound.hold_while_paused
        reason = _reason(result)
        await self._status(message, provider.name, State.RETRYING, delivery.attempt,
                           reason=f"held while sending is paused: {reason}", code=result.code,
                           details={"held_for_at_most": describe(hold)})
        log.warning("outbound %s held while %s is paused: %s", message.id, provider.name,
                    reason, extra={"msg_id": message.id})
        self.held.add(message.id)
        try:
            while result.outcome == Outcome.PAUSED:
                left = hold - (utcnow() - requested_at).total_seconds()
                if left <= 0:
                    return SendResult(Outcome.FAILED, code=result.code, reason=(
                        f"held {describe(hold)} while sending was paused "
                        f"(`[outbound] hold_while_paused`): {_reason(result)}"))
                resumed = self._resume
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(resumed.wait(), min(left, HOLD_POLL))
                if resumed.is_set() and resumed is self._resume:
                    self._resume = asyncio.Event()  # the next reload wakes them again
                result = await self.batcher.submit(provider, message)
        finally:
            self.held.discard(message.id)
        return result

    async def _check(self, delivery: Delivery
                     ) -> tuple[Provider, OutboundMessage, datetime] | None:
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
        if await self._accepted_here(request.id):
            return None
        try:
            provider, message, sending = await self._prepare(request, delivery)
        except _Refused as refused:
            # A refusal must not follow an acceptance (a redelivery after the rules
            # changed): read first whether there was one.
            if await self._already_accepted(request.id):
                return None
            await self._refuse(request, refused.error, refused.channel)
        if not await self._start(sending):
            # The record is not as this process wrote it (or it has no record of it): read
            # the record and the message's events (an `accepted` whose fold was lost).
            if await self._already_accepted(request.id):
                return None
            await self._publish(sending)
        return provider, message, request.requested_at

    async def _prepare(self, request: OutboundRequest, delivery: Delivery
                       ) -> tuple[Provider, OutboundMessage, StatusEvent]:
        """The message, its provider and its `sending` event; `_Refused` when it cannot
        be sent."""
        try:
            request, count = check_request(request, self.runtime.config)
            sender, channel = await resolve_sender(self.runtime, request)
            await refuse_opted_out(self.runtime, request, sender)
        except (InvalidRequest, UnroutableRequest) as error:
            raise _Refused(error) from error
        try:
            media = await resolve_media(self.runtime, request) if request.is_mms else []
        except MediaInvalid as error:
            raise _Refused(InvalidRequest(error.message, error.field or "media"),
                           channel) from error
        provider = self.runtime.providers[channel]
        try:
            count = measure(request, self.runtime.config, billing_of(provider))
        except InvalidRequest as error:
            raise _Refused(error) from error
        message = OutboundMessage(id=request.id, from_=sender, to=request.to,
                                  body=request.body, segments=count.segments,
                                  media=tuple(media), subject=request.subject)
        record = self.runtime.numbers.get(sender)
        sending = self._event(message, channel, State.SENDING, delivery.attempt,
                              details={"from": sender, "encoding": count.encoding},
                              domain=record.domain if record else None,
                              stream_seq=delivery.stream_seq)
        return provider, message, sending

    async def _start(self, sending: StatusEvent) -> bool:
        """Store `sending` without reading the record first, when this process knows it
        holds no attempt to send: False, nothing stored, when it cannot tell.

        Nothing reaches the carrier before its `sending` is folded into the record, so a
        record that shows no state but `queued` (or does not exist), unchanged since this
        process wrote or read it (the compare-and-set proves it), was never sent: in
        particular not accepted by a process that died before folding its `accepted`."""
        try:
            published = await self.runtime.publish_status_unchanged(sending, _never_sent)
        except PublishError as error:
            raise Retry(f"status {sending.state.value} not stored: {error}") from error
        return published is not None

    async def _accepted_here(self, message_id: str) -> bool:
        """Whether this process accepted it (its `accepted` published again: it may not
        be stored or folded yet)."""
        remembered = self._accepted.get(message_id)
        if remembered is None:
            return False
        event = StatusEvent.model_validate_json(remembered)
        await self._publish(event)
        self._duplicate(message_id, event.channel or "-", event.provider_message_id)
        return True

    async def _already_accepted(self, message_id: str) -> bool:
        # An `accepted` whose producer died before folding it is folded now, so that the
        # message leaves `sending` in the state index and its receipts find it.
        # Reads of a burst are pipelined by the Publisher: no batching needed here.
        record = await self.runtime.status.catch_up(message_id)
        if record is None or not (record.provider_message_id or record.state in DONE):
            return False
        self._duplicate(message_id, next(iter(record.channels), "-"),
                        record.provider_message_id)
        return True

    def _duplicate(self, message_id: str, channel: str, provider_id: str | None) -> None:
        metrics.OUTBOUND.labels(channel, "duplicate").inc()
        log.info("outbound %s was already accepted (%s); not sending it again", message_id,
                 provider_id, extra={"msg_id": message_id})

    async def _refuse(self, request: OutboundRequest,
                      error: InvalidRequest | UnroutableRequest,
                      channel: str | None = None) -> NoReturn:
        channel, reason = channel or request.provider, error.message
        if isinstance(error, InvalidRequest):
            state, code = State.FAILED, error.code
            outcome = "opted_out" if code == "OPTED_OUT" else "invalid"
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
        if result.details.get(OPTED_OUT):
            await self._carrier_opt_out(message, name, result)
        metrics.OUTBOUND.labels(name, "failed").inc()
        metrics.OUTBOUND_FAILURES.labels(name, result.code or "-").inc()
        log.warning("outbound %s failed (%s): %s", message.id, result.code or "-", reason,
                    extra={"msg_id": message.id})
        # `details` say why for good, e.g. `opted_out` (the recipient replied STOP).
        await self._status(message, name, State.FAILED, delivery.attempt, reason=reason,
                           code=result.code, details=result.details)
        raise Permanent(f"{result.code}: {reason}" if result.code else reason)

    async def _carrier_opt_out(self, message: OutboundMessage, provider: str,
                               result: SendResult) -> None:
        """The carrier refused `message` as opted out: record it, so the next send to this
        customer from this number is refused before any carrier call."""
        word = OptOut(number=message.from_, customer=message.to, opted_out=True,
                      source="carrier", keyword=result.code, at=utcnow())
        try:
            await record_word(self.runtime, word, message.id, provider)
        except Exception as error:  # the message's own failure is settled regardless
            log.error("outbound %s: the carrier's opt-out of its recipient is not recorded: "
                      "%s", message.id, error, extra={"msg_id": message.id})

    def _event(self, message: OutboundMessage, channel: str, state: State, attempt: int,
               reason: str | None = None, code: str | None = None,
               provider_message_id: str | None = None,
               details: Mapping[str, object] | None = None,
               domain: str | None = None, stream_seq: int | None = None) -> StatusEvent:
        return StatusEvent(id=message.id, direction="outbound", state=state, channel=channel,
                           attempt=attempt, reason=reason, error_code=code,
                           provider_message_id=provider_message_id, domain=domain,
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


class _Refused(Exception):
    """The request cannot be sent: `error` says why (`channel`: the provider it was for,
    when known)."""

    def __init__(self, error: InvalidRequest | UnroutableRequest,
                 channel: str | None = None) -> None:
        super().__init__(error.message)
        self.error, self.channel = error, channel


def _never_sent(record: StatusRecord | None) -> bool:
    """Whether `record` shows no attempt to send: none, or `queued` only (a dropped
    history entry could have been any)."""
    return record is None or (
        not record.provider_message_id and not record.history_dropped
        and all(entry.state == State.QUEUED for entry in record.history))


def _reason(result: SendResult) -> str:
    return result.reason or result.code or result.outcome.value
