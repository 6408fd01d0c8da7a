"""Twilio as an outbound provider: one create call per message (Twilio takes one
recipient a call), sent no faster than each sending number's rate, paused after Twilio
refuses the account, every error code judged (codes.py). A call that may or may not
have created the message (timeout, dropped, 5xx) is looked up in Twilio's message list
before the message is called ambiguous.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from pbxsms.core.plugin_api import (
    CarrierError,
    NoAnswer,
    NotSent,
    OutboundMessage,
    Outcome,
    Runtime,
    SendResult,
    carrier_links,
    metrics,
    public_url,
)
from pbxsms.plugins.twilio import codes
from pbxsms.plugins.twilio.client import JsonDict, TwilioClient, TwilioError
from pbxsms.plugins.twilio.settings import NAME, TwilioSettings, twilio_settings
from pbxsms.plugins.twilio.webhooks import STATUS_PATH

log = logging.getLogger("pbxsms.twilio")

CREDENTIALS = "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
# A message found in the list counts when created this long before the call or later
# (Twilio's clock and ours may differ).
CLOCK_MARGIN = 60.0
# A full queue at Twilio drains at the number's rate: come back in a while.
QUEUE_FULL_WAIT = 30.0


class SegmentLimiter:
    """Token bucket of one sending number: `rate` segments a second. A message of several
    segments may take the bucket below zero; the next one then waits for it to refill.
    Callers go in arrival order."""

    def __init__(self) -> None:
        self._tokens: float | None = None
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self, segments: int, rate: float) -> None:
        async with self._lock:
            burst = max(rate, 1.0)
            while True:
                now = time.monotonic()
                tokens = burst if self._tokens is None else self._tokens
                self._tokens = min(burst, tokens + (now - self._updated) * rate)
                self._updated = now
                if self._tokens >= 1.0:
                    self._tokens -= max(segments, 1)
                    return
                await asyncio.sleep((1.0 - self._tokens) / rate)


@dataclass(frozen=True)
class Pause:
    """Sending paused after Twilio refused the account."""

    reason: str
    code: str
    until: float
    credentials: str  # fingerprint: new credentials end the pause at once


class TwilioProvider:
    """The `twilio` provider; reads its settings per call, so a reload applies at once."""

    name = NAME
    max_batch = 1
    flush_delay = 0.0

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._limiters: dict[str, SegmentLimiter] = {}
        self._pause: Pause | None = None
        self._held_until = 0.0  # after a 429: the account's concurrency limit

    @property
    def settings(self) -> TwilioSettings:
        return twilio_settings(self.runtime.config)

    @property
    def retry_ambiguous(self) -> bool:
        return self.settings.on_ambiguous == "retry"

    def paused(self) -> Pause | None:
        """The pause in force, if any (ended by new credentials or by its interval)."""
        pause = self._pause
        if pause is not None and (pause.credentials != _fingerprint(self.settings)
                                  or time.monotonic() >= pause.until):
            self._pause = pause = None
            metrics.PROVIDER_PAUSED.labels(NAME).set(0)
        return pause

    def readiness(self) -> list[str]:
        pause = self.paused()
        if pause is None:
            return []
        left = max(pause.until - time.monotonic(), 0.0)
        return [f"twilio: sending paused: {pause.reason}; fix the settings and run "
                f"`pbxsms reload`, or it tries again in {left:.0f}s"]

    def status_callback(self, message_id: str) -> str | None:
        """Our status URL for this message: its id rides in the query, which Twilio signs."""
        url = public_url(self.runtime.config.core.public_url, STATUS_PATH)
        return f"{url}?id={message_id}" if url else None

    async def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        return [await self.send(message) for message in messages]

    async def send(self, message: OutboundMessage) -> SendResult:
        settings = self.settings
        if not settings.can_send:
            return SendResult(Outcome.FAILED, code="NOT_CONFIGURED",
                              reason=f"Twilio is not configured: set {CREDENTIALS}")
        pause = self.paused()
        if pause is not None:
            return SendResult(Outcome.PAUSED, code=pause.code, reason=pause.reason)
        limiter = self._limiters.setdefault(message.from_, SegmentLimiter())
        await limiter.acquire(message.segments, settings.rate_of(message.from_))
        wait = self._held_until - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        # Twilio fetches each picture from our signed link (PBXSMS_PUBLIC_URL).
        media_urls = await carrier_links(self.runtime, message.media, "Twilio")
        if isinstance(media_urls, SendResult):
            return media_urls
        client = TwilioClient(self.runtime.http, settings)
        metrics.PROVIDER_BATCH_SIZE.labels(NAME).observe(1)
        started, called_at = time.perf_counter(), time.time()
        try:
            answer = await client.create_message(message.to, message.from_, message.body,
                                                 self.status_callback(message.id), media_urls)
        except NotSent as error:
            _count("not_sent")
            log.warning("Twilio send of %s not sent, will retry: %s", message.id, error,
                        extra={"msg_id": message.id})
            return SendResult(Outcome.RETRY, code="NOT_SENT", reason=str(error))
        except NoAnswer as error:
            _count("no_answer")
            result = SendResult(Outcome.AMBIGUOUS, code="NO_ANSWER", reason=f"ambiguous: {error}")
        except TwilioError as error:
            result = self._judge_error(error, settings, message)
        else:
            _count("ok")
            return _accepted(answer)
        finally:
            metrics.PROVIDER_SECONDS.labels(NAME).observe(time.perf_counter() - started)
        if result.outcome != Outcome.AMBIGUOUS:
            return result
        log.warning("Twilio send of %s is ambiguous: %s", message.id, result.reason,
                    extra={"msg_id": message.id})
        return await self._reconcile(client, message, called_at, result)

    def _judge_error(self, error: TwilioError, settings: TwilioSettings,
                     message: OutboundMessage) -> SendResult:
        code = str(error.code) if error.code else f"HTTP_{error.status}"
        if error.status == 401 or error.code in codes.ACCOUNT:
            _count("auth")
            reason = f"Twilio refused the account: {codes.describe(error.code, error.message)}" \
                if error.code else f"Twilio refused {CREDENTIALS} (HTTP {error.status})"
            self._start_pause(reason, code, settings)
            return SendResult(Outcome.PAUSED, code=code, reason=reason)
        if error.status == 429 or error.code == codes.RATE_LIMITED:
            _count("rate_limited")
            wait = error.retry_after if error.retry_after is not None else 1.0
            self._held_until = max(self._held_until, time.monotonic() + wait)
            log.warning("Twilio rate limit (%s): sends wait %.1fs", error, wait)
            return SendResult(Outcome.RETRY, code=code, reason=f"rate limited ({error})",
                              retry_after=wait)
        if error.code == codes.QUEUE_FULL:
            _count("rate_limited")
            return SendResult(Outcome.RETRY, code=code,
                              reason=codes.describe(error.code, error.message),
                              retry_after=QUEUE_FULL_WAIT)
        if error.status == 503:  # refused before any work: the load balancer's answer
            _count("server_error")
            return SendResult(Outcome.RETRY, code=code, reason=f"Twilio unavailable ({error})")
        if error.status >= 500 or error.status == 408:
            _count("server_error")
            return SendResult(Outcome.AMBIGUOUS, code=code, reason=f"ambiguous: {error}")
        _count("client_error")
        reason = codes.describe(error.code, error.message) if error.code else \
            f"Twilio refused it: {error}"
        details: dict[str, object] = {}
        if error.code == codes.OPTED_OUT:
            details["opted_out"] = True
            log.warning("outbound %s: %s opted out of messages from %s (Twilio 21610)",
                        message.id, message.to, message.from_, extra={"msg_id": message.id})
        elif error.code in codes.CONFIGURATION:
            metrics.PROVIDER_ACCOUNT_ERRORS.labels(NAME, code).inc()
            reason += "; see docs/twilio-setup.md and `pbxsms doctor`"
            log.error("Twilio refused %s: %s", message.id, reason, extra={"msg_id": message.id})
        return SendResult(Outcome.FAILED, code=code, reason=reason, details=details)

    async def _reconcile(self, client: TwilioClient, message: OutboundMessage,
                         called_at: float, ambiguous: SendResult) -> SendResult:
        """Twilio has no idempotency key, but lists the messages between two numbers,
        newest first: one with our text created since the call is ours."""
        await asyncio.sleep(self.settings.reconcile_delay)
        try:
            records = await client.recent_messages(message.to, message.from_)
        except CarrierError as error:
            metrics.PROVIDER_RECONCILED.labels(NAME, "lookup_failed").inc()
            log.warning("Twilio message lookup failed, %s stays ambiguous: %s", message.id,
                        error, extra={"msg_id": message.id})
            return ambiguous
        for record in records:
            if (record.get("body") == message.body and isinstance(record.get("sid"), str)
                    and _created(record) >= called_at - CLOCK_MARGIN):
                metrics.PROVIDER_RECONCILED.labels(NAME, "accepted").inc()
                log.warning("outbound %s found in Twilio's message list as %s: accepted",
                            message.id, record["sid"], extra={"msg_id": message.id})
                result = _accepted(record)
                result.details["reconciled"] = True
                return result
        metrics.PROVIDER_RECONCILED.labels(NAME, "ambiguous").inc()
        log.warning("outbound %s not in Twilio's message list: stays ambiguous", message.id,
                    extra={"msg_id": message.id})
        return ambiguous

    def _start_pause(self, reason: str, code: str, settings: TwilioSettings) -> None:
        if self._pause is None:
            log.error("%s; sending paused for up to %.0fs (readiness reports it)", reason,
                      settings.auth_retry_interval)
        metrics.PROVIDER_ACCOUNT_ERRORS.labels(NAME, code).inc()
        metrics.PROVIDER_PAUSED.labels(NAME).set(1)
        self._pause = Pause(reason, code, time.monotonic() + settings.auth_retry_interval,
                            _fingerprint(settings))


def _accepted(record: JsonDict) -> SendResult:
    details = {key: record[key] for key in ("status", "num_segments", "price", "price_unit")
               if record.get(key) is not None}
    return SendResult(Outcome.ACCEPTED, provider_message_id=str(record["sid"]),
                      details=details)


def _created(record: JsonDict) -> float:
    """`date_created` (RFC 2822) as a unix time; 0 when absent or unreadable."""
    try:
        return parsedate_to_datetime(str(record.get("date_created"))).timestamp()
    except (TypeError, ValueError):
        return 0.0


def _count(result: str) -> None:
    metrics.PROVIDER_REQUESTS.labels(NAME, result).inc()


def _fingerprint(settings: TwilioSettings) -> str:
    return hashlib.sha256(f"{settings.base_url}\0{settings.account_sid}\0{settings.token}"
                          .encode()).hexdigest()
