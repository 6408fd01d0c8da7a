"""ClickSend as an outbound provider: one `/v3/sms/send` call per batch, each message's
result judged on its own `status`, a client-side rate limit, and a pause after 401.
A call that may or may not have been processed (timeout, dropped, 5xx) is reconciled
against ClickSend's SMS history before any of its messages is called ambiguous.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pbxsms.core.plugin_api import (
    CarrierError,
    NoAnswer,
    NotSent,
    OutboundMessage,
    Outcome,
    RateLimiter,
    Runtime,
    SendResult,
    metrics,
)
from pbxsms.plugins.clicksend.client import (
    MAX_MESSAGES,
    ClickSendClient,
    HTTPError,
    JsonDict,
    sms_message,
)
from pbxsms.plugins.clicksend.mms_sender import send_mms
from pbxsms.plugins.clicksend.settings import ClickSendSettings

log = logging.getLogger("pbxsms.clicksend")

NAME = "clicksend"
# Not queued, but worth another try with backoff: THROTTLED is "same body to the same
# recipient too soon, try again in a few seconds"; the others are ClickSend-side errors.
TRANSIENT = frozenset({"THROTTLED", "INTERNAL_ERROR", "SOMETHING_IS_WRONG"})
# The account itself is refused: pause like a 401.
ACCOUNT = frozenset({"INVALID_CREDENTIALS", "MISSING_CREDENTIALS", "ACCOUNT_NOT_ACTIVATED"})
CREDENTIALS = "CLICKSEND_USERNAME and CLICKSEND_API_KEY"
_CODE = re.compile(r"^[A-Z0-9_]{1,40}$")
# The history is searched from this long before the call to this long after now, in
# case ClickSend's clock and ours differ.
HISTORY_MARGIN = 60


@dataclass(frozen=True)
class Pause:
    """Sending paused after ClickSend refused the account."""

    reason: str
    code: str
    until: float
    credentials: str  # fingerprint: new credentials end the pause at once


class ClickSendProvider:
    """The `clicksend` provider; reads its settings per call, so a reload applies at once."""

    name = NAME

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._limiters: dict[str, RateLimiter] = {}
        self._pause: Pause | None = None

    @property
    def settings(self) -> ClickSendSettings:
        settings = self.runtime.config.plugin(NAME, ClickSendSettings)
        return settings

    @property
    def max_batch(self) -> int:
        return min(self.settings.max_batch, MAX_MESSAGES)

    @property
    def flush_delay(self) -> float:
        return self.settings.flush_delay

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
        return [f"clicksend: sending paused: {pause.reason}; fix the settings and run "
                f"`pbxsms reload`, or it tries again in {left:.0f}s"]

    async def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        """SMS in one `/v3/sms/send` call, each MMS by itself (plugins/clicksend/mms_sender.py)."""
        if not any(message.media for message in messages):
            return await self._send_sms(messages)
        sms = [message for message in messages if not message.media]
        results = dict(zip((m.id for m in sms), await self._send_sms(sms) if sms else [],
                           strict=True))
        for message in messages:
            if message.media:
                results[message.id] = await self._send_mms(message)
        return [results[message.id] for message in messages]

    async def _send_mms(self, message: OutboundMessage) -> SendResult:
        settings = self.settings
        if not settings.can_send:
            return SendResult(Outcome.FAILED, code="NOT_CONFIGURED",
                              reason=f"ClickSend is not configured: set {CREDENTIALS}")
        pause = self.paused()
        if pause is not None:
            return SendResult(Outcome.PAUSED, code=pause.code, reason=pause.reason)
        limiter = self._limiters.setdefault(settings.username or "", RateLimiter())
        await limiter.acquire(settings.requests_per_second)
        result = await send_mms(self.runtime, ClickSendClient(self.runtime.http, settings),
                                settings, message)
        if result.outcome == Outcome.PAUSED:
            self._start_pause(result.reason or "ClickSend refused the account",
                              result.code or "UNAUTHORIZED", settings)
        return result

    async def _send_sms(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        settings = self.settings
        if not settings.can_send:
            return _all(messages, SendResult(
                Outcome.FAILED, code="NOT_CONFIGURED",
                reason=f"ClickSend is not configured: set {CREDENTIALS}"))
        pause = self.paused()
        if pause is not None:
            return _all(messages, SendResult(Outcome.PAUSED, code=pause.code,
                                             reason=pause.reason))
        limiter = self._limiters.setdefault(settings.username or "", RateLimiter())
        await limiter.acquire(settings.requests_per_second)
        client = ClickSendClient(self.runtime.http, settings)
        metrics.PROVIDER_BATCH_SIZE.labels(NAME).observe(len(messages))
        started, called_at = time.perf_counter(), time.time()
        try:
            data = await client.send_sms([sms_message(m) for m in messages])
        except NotSent as error:
            _count("not_sent")
            log.warning("ClickSend send of %d not sent, will retry: %s", len(messages), error)
            return _all(messages, SendResult(Outcome.RETRY, code="NOT_SENT", reason=str(error)))
        except NoAnswer as error:
            _count("no_answer")
            log.warning("ClickSend send of %d is ambiguous: %s", len(messages), error)
            result = SendResult(Outcome.AMBIGUOUS, code="NO_ANSWER", reason=f"ambiguous: {error}")
        except HTTPError as error:
            result = self._http_error(error, settings, limiter, len(messages))
        else:
            _count("ok")
            return self._judge(messages, data["messages"])
        finally:
            metrics.PROVIDER_SECONDS.labels(NAME).observe(time.perf_counter() - started)
        if result.outcome != Outcome.AMBIGUOUS:
            return _all(messages, result)
        return await self._reconcile(client, messages, called_at, result)

    async def _reconcile(self, client: ClickSendClient, messages: Sequence[OutboundMessage],
                         called_at: float, ambiguous: SendResult) -> list[SendResult]:
        """ClickSend has no idempotency key, but its history lists what it stored, with our
        id as `custom_string`: those messages are accepted, the others stay ambiguous."""
        await asyncio.sleep(self.settings.reconcile_delay)
        try:
            records = await client.sms_history(int(called_at) - HISTORY_MARGIN,
                                               int(time.time()) + HISTORY_MARGIN)
        except CarrierError as error:
            metrics.PROVIDER_RECONCILED.labels(NAME, "lookup_failed").inc(len(messages))
            log.warning("ClickSend history lookup failed, %d message(s) stay ambiguous: %s",
                        len(messages), error)
            return _all(messages, ambiguous)
        stored: dict[str, JsonDict] = {}
        for record in records:
            message_id, ours = record.get("message_id"), record.get("custom_string")
            if isinstance(message_id, str) and message_id and isinstance(ours, str) and ours:
                stored.setdefault(ours, record)
        results = [ambiguous if message.id not in stored
                   else _accepted(stored[message.id], message.id) for message in messages]
        found = sum(result.outcome == Outcome.ACCEPTED for result in results)
        metrics.PROVIDER_RECONCILED.labels(NAME, "accepted").inc(found)
        metrics.PROVIDER_RECONCILED.labels(NAME, "ambiguous").inc(len(messages) - found)
        log.warning("ClickSend history: %d of %d message(s) of the ambiguous call were stored "
                    "and are accepted; %d stay ambiguous", found, len(messages),
                    len(messages) - found)
        return results

    def _http_error(self, error: HTTPError, settings: ClickSendSettings, limiter: RateLimiter,
                    count: int) -> SendResult:
        code = _code(error.response_code) or f"HTTP_{error.status}"
        if error.status in (401, 403):
            _count("auth")
            # A 401's text names CLICKSEND_USERNAME and CLICKSEND_API_KEY; 403 is a
            # suspended account.
            what = str(error) if error.status == 401 else f"ClickSend refused the account ({error})"
            self._start_pause(what, code, settings)
            return SendResult(Outcome.PAUSED, code=code, reason=what)
        if error.status == 429:
            _count("rate_limited")
            wait = error.retry_after if error.retry_after is not None else 1.0
            limiter.hold(wait)
            log.warning("ClickSend rate limit (429): %d messages retry in %.1fs", count, wait)
            return SendResult(Outcome.RETRY, code=code, reason=f"rate limited ({error})",
                              retry_after=wait)
        if error.status >= 500 or error.status == 408:
            _count("server_error")
            log.warning("ClickSend send of %d is ambiguous: %s", count, error)
            return SendResult(Outcome.AMBIGUOUS, code=code, reason=f"ambiguous: {error}")
        _count("client_error")
        # `data` may echo the messages (bodies): DEBUG only.
        log.error("ClickSend refused a send of %d: %s", count, error)
        log.debug("ClickSend's answer: %s", error.data)
        return SendResult(Outcome.FAILED, code=code, reason=f"ClickSend refused it: {error}")

    def _start_pause(self, reason: str, code: str, settings: ClickSendSettings) -> None:
        if self._pause is None:
            log.error("%s; sending paused for up to %.0fs (readiness reports it)", reason,
                      settings.auth_retry_interval)
        metrics.PROVIDER_ACCOUNT_ERRORS.labels(NAME, code).inc()
        metrics.PROVIDER_PAUSED.labels(NAME).set(1)
        self._pause = Pause(reason, code, time.monotonic() + settings.auth_retry_interval,
                            _fingerprint(settings))

    def _judge(self, messages: Sequence[OutboundMessage], answered: list[Any]
               ) -> list[SendResult]:
        """One result per message, matched by position and checked by `custom_string`."""
        by_id: dict[str, JsonDict] = {}
        for item in answered:
            if isinstance(item, dict) and item.get("custom_string"):
                by_id.setdefault(str(item["custom_string"]), item)
        results = []
        out_of_credit = 0
        for index, message in enumerate(messages):
            item = answered[index] if index < len(answered) else None
            if not isinstance(item, dict) or str(item.get("custom_string")) != message.id:
                item = by_id.get(message.id)
            result = _judge_one(item)
            if result.code == "INSUFFICIENT_CREDIT":
                out_of_credit += 1
            if result.code in ACCOUNT:
                self._start_pause(result.reason or result.code, result.code, self.settings)
            results.append(result)
        if out_of_credit:
            metrics.PROVIDER_ACCOUNT_ERRORS.labels(NAME, "INSUFFICIENT_CREDIT").inc(out_of_credit)
            log.error("ClickSend account is out of credit: %d message(s) failed with "
                      "INSUFFICIENT_CREDIT; top up the account", out_of_credit)
        return results


def _judge_one(item: JsonDict | None) -> SendResult:
    if item is None:
        return SendResult(Outcome.AMBIGUOUS, code="NO_RESULT",
                          reason="ambiguous: ClickSend's answer does not mention the message")
    status = _code(item.get("status")) or "NO_STATUS"
    if status == "SUCCESS":
        message_id = item.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            return SendResult(Outcome.AMBIGUOUS, code="NO_MESSAGE_ID",
                              reason="ambiguous: SUCCESS without a message_id")
        details = {key: item[key] for key in ("message_parts", "message_price", "from",
                                               "country", "carrier") if item.get(key)}
        return SendResult(Outcome.ACCEPTED, provider_message_id=message_id, details=details)
    if status in TRANSIENT:
        return SendResult(Outcome.RETRY, code=status, reason=f"ClickSend: {status}")
    if status in ACCOUNT:
        return SendResult(Outcome.PAUSED, code=status,
                          reason=f"ClickSend refused {CREDENTIALS} ({status})")
    if status == "INSUFFICIENT_CREDIT":
        return SendResult(Outcome.FAILED, code=status,
                          reason="ClickSend account is out of credit (INSUFFICIENT_CREDIT)")
    # INVALID_RECIPIENT, INVALID_SENDER_ID, COUNTRY_NOT_ENABLED, EMPTY_MESSAGE, ... and any
    # status ClickSend may add: not queued, and a retry cannot change that.
    return SendResult(Outcome.FAILED, code=status, reason=f"ClickSend refused it: {status}")


def _accepted(record: JsonDict, message_id: str) -> SendResult:
    """A message found in ClickSend's history: accepted as a SUCCESS answer would be."""
    details = {key: record[key] for key in ("message_parts", "message_price", "from",
                                           "country", "carrier") if record.get(key)}
    details["reconciled"] = True
    log.debug("outbound %s found in ClickSend's history as %s", message_id,
              record["message_id"])
    return SendResult(Outcome.ACCEPTED, provider_message_id=str(record["message_id"]),
                      details=details)


def _code(value: object) -> str | None:
    """A provider code fit for a metric label (few, short values), or None."""
    if not isinstance(value, str) or not value:
        return None
    return value if _CODE.match(value) else "OTHER"


def _all(messages: Sequence[OutboundMessage], result: SendResult) -> list[SendResult]:
    return [result] * len(messages)


def _count(result: str) -> None:
    metrics.PROVIDER_REQUESTS.labels(NAME, result).inc()


def _fingerprint(settings: ClickSendSettings) -> str:
    key = settings.api_key.get_secret_value() if settings.api_key else ""
    return hashlib.sha256(f"{settings.base_url}\0{settings.username}\0{key}".encode()
                          ).hexdigest()
