"""Delivering inbound messages to people (mobile app, email): once per message and recipient.

A channel consumer may see the same message many times: a retry, a redelivery after a
crash, an operator's replay, a second instance. The ledger, a KV bucket keyed by channel,
our message id and recipient, remembers each settled delivery, so none of these reaches a
person twice; only a delivery whose answer was lost in a crash may repeat. `report`
publishes the outcome of every attempt as a status event for the channel.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from pydantic import BaseModel, Field, ValidationError

from pbxsms.bus.consumer import Delivery, Permanent, Retry
from pbxsms.bus.kv import Bucket
from pbxsms.bus.publish import PublishError
from pbxsms.core.health import metrics
from pbxsms.core.model.events import InboundMessage, State, StatusEvent, utcnow

if TYPE_CHECKING:
    from pbxsms.core.serve.runtime import Runtime

log = logging.getLogger("pbxsms.deliveries")

DELIVERIES_BUCKET = "sms_deliveries"

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_=-]{1,64}$")


class Settled(BaseModel):
    """What the ledger keeps about one settled delivery."""

    state: Literal["delivered", "failed"]
    attempt: int
    at: datetime = Field(default_factory=utcnow)
    provider_message_id: str | None = None
    reason: str | None = None


class Ledger:
    """Settled deliveries, per channel, message and recipient (KV, kept as long as events)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._kv: Bucket | None = None

    async def _bucket(self) -> Bucket:
        if self._kv is None:
            self._kv = await self.runtime.bucket(DELIVERIES_BUCKET,
                                                 ttl=self.runtime.config.file.bus.max_age)
        return self._kv

    async def get(self, channel: str, message_id: str,
                  recipient: str | None = None) -> Settled | None:
        value, _ = await (await self._bucket()).get(ledger_key(channel, message_id,
                                                               recipient))
        return Settled.model_validate_json(value) if value else None

    async def get_many(self, channel: str, message_id: str,
                       recipients: Sequence[str]) -> list[Settled | None]:
        """`get` for each recipient, every read in flight at once (one round trip)."""
        keys = [ledger_key(channel, message_id, recipient) for recipient in recipients]
        values = await (await self._bucket()).get_many(keys)
        return [Settled.model_validate_json(value) if value else None
                for value, _ in (values[key] for key in keys)]

    async def settle(self, channel: str, message_id: str, settled: Settled,
                     recipient: str | None = None, patience: float = 30.0) -> None:
        """Record a settled delivery, retrying for up to `patience` seconds.

        A lost record here is the one way a person could be reached twice (the delivery
        would be retried), so it outlasts a bus hiccup such as a cluster leader election;
        the consumer keeps the message ours meanwhile (`in_progress`).
        """
        key = ledger_key(channel, message_id, recipient)
        deadline = time.monotonic() + patience
        pause = 0.2
        while True:
            try:
                await (await self._bucket()).put(key, settled.model_dump_json().encode())
                return
            except Exception as error:
                if time.monotonic() + pause >= deadline:
                    raise
                log.warning("%s: ledger write for %s failed (%s); retrying", channel,
                            message_id, error, extra={"msg_id": message_id})
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)


    async def forget(self, message_id: str) -> int:
        """Forget every settled delivery of a message (an operator's forced redelivery
        reaches everyone again); how many were forgotten."""
        bucket = await self._bucket()
        part = _key_part(message_id)
        keys = [*await bucket.keys_matching(f"*.{part}"),
                *await bucket.keys_matching(f"*.{part}.*")]
        stored = await bucket.get_many(keys)
        live = [key for key, (value, _) in stored.items() if value is not None]
        for key in live:
            await bucket.delete(key)
        return len(live)


def ledger_key(channel: str, message_id: str, recipient: str | None = None) -> str:
    """`<channel>.<id>[.<recipient hash>]`: recipients (addresses) are hashed, because KV
    keys allow few characters and addresses need not appear in key listings."""
    parts = [channel, _key_part(message_id)]
    if recipient is not None:
        parts.append(_digest(recipient.strip().lower()))
    return ".".join(parts)


def _key_part(value: str) -> str:
    return value if _PLAIN_KEY.match(value) else _digest(value)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:40]


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
                 stream_seq: int | None = None) -> None:
    """Publish this attempt's outcome on `sms.status.<id>` and count it; `stream_seq`
    (the delivery's) lets the operator's API find the message's text again.

    A status that cannot be stored makes the attempt a Retry: the ledger keeps the
    delivery itself from repeating, so only the status event is published again.
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
        await runtime.publish_status(event)
    except PublishError as error:
        raise Retry(f"{channel} status not stored: {error}") from error


async def fail_delivery(runtime: Runtime, message: InboundMessage, channel: str,
                         delivery: Delivery, failure: Retry | Permanent,
                         details: dict[str, Any] | None = None) -> NoReturn:
    """Publish `retrying`, or `failed` when no attempt is left, then re-raise `failure`
    for the consumer runner (backoff, or the dead letter with the same reason)."""
    final = isinstance(failure, Permanent) or delivery.last_attempt
    state = State.FAILED if final else State.RETRYING
    try:
        await report(runtime, message, channel, state, delivery.attempt, failure.reason,
                     details=details, stream_seq=delivery.stream_seq)
    except Retry as error:
        # The delivery's own failure is what counts; the runner still retries or
        # dead-letters it, and the dead letter carries the reason.
        log.warning("%s: %s", channel, error.reason, extra={"msg_id": message.id})
    raise failure
