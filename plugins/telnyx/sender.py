"""Telnyx as an outbound provider: one `POST /v2/messages` per message, a client-side
rate limit that Telnyx's 429 holds, Telnyx's error codes classified into outcomes, and a
pause after the account is refused.

Telnyx answers errors as `errors[{code, title, detail}]` whose HTTP status varies with
the validation stage, so the code decides (docs/telnyx-setup.md lists them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from pbxsms.core.plugin_api import (
    CarrierGate,
    NoAnswer,
    NotSent,
    OutboundMessage,
    Outcome,
    RateLimiter,
    Runtime,
    SendResult,
    carrier_links,
    fingerprint,
    metrics,
    opted_out,
)
from pbxsms.plugins.telnyx.client import HTTPError, TelnyxClient
from pbxsms.plugins.telnyx.inbound import OPT_OUT_CODE
from pbxsms.plugins.telnyx.settings import NAME, TelnyxSettings, telnyx_settings

log = logging.getLogger("pbxsms.telnyx")

CREDENTIALS = "TELNYX_API_KEY"
# The account or key is refused: pause like a 401 (auth failed, key revoked, account
# inactive/blocked/out of funds, messaging profile secret or disabled).
ACCOUNT = frozenset({"10009", "20002", "20012", "20013", "20100",
                     "40311", "40312", "40313", "40314"})
# Not sent, and worth another try later: rate limited, queue full.
TRANSIENT = frozenset({"10011", "40318"})
# The operator must fix the setup (number not on the profile, unregistered 10DLC or
# toll-free, region not allowed, ...): failed, and `pbxsms doctor` says what to check.
CONFIGURATION = frozenset({"40305", "40306", "40309", "40010", "40329", "40321",
                           "40150", "40151"})
# Telnyx may or may not have queued the message: an unexpected error on its side.
UNEXPECTED = "10007"


class TelnyxProvider:
    """The `telnyx` provider; reads its settings per call, so a reload applies at once."""

    name = NAME
    max_batch = 1  # one recipient per request
    flush_delay = 0.0

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.gate = CarrierGate(NAME, "Telnyx")
        self.pause = self.gate.pause

    @property
    def settings(self) -> TelnyxSettings:
        return telnyx_settings(self.runtime.config)

    @property
    def retry_ambiguous(self) -> bool:
        return self.settings.on_ambiguous == "retry"

    def readiness(self) -> list[str]:
        return self.pause.readiness(_credentials(self.settings))

    async def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        return [await self.send(message) for message in messages]

    async def send(self, message: OutboundMessage) -> SendResult:
        settings = self.settings
        limiter = await self.gate.admit(settings.can_send, CREDENTIALS, _credentials(settings),
                                        settings.requests_per_second)
        if isinstance(limiter, SendResult):
            return limiter
        # Telnyx fetches each picture from our signed link (PBXSMS_PUBLIC_URL).
        media_urls = await carrier_links(self.runtime, message.media, "Telnyx")
        if isinstance(media_urls, SendResult):
            return media_urls
        metrics.PROVIDER_BATCH_SIZE.labels(NAME).observe(1)
        started = time.perf_counter()
        try:
            data = await TelnyxClient(self.runtime.http, settings).send(message, media_urls)
        except NotSent as error:
            _count("not_sent")
            log.warning("Telnyx send of %s not sent, will retry: %s", message.id, error)
            return SendResult(Outcome.RETRY, code="NOT_SENT", reason=str(error))
        except NoAnswer as error:
            _count("no_answer")
            log.warning("Telnyx send of %s is ambiguous: %s", message.id, error)
            return SendResult(Outcome.AMBIGUOUS, code="NO_ANSWER", reason=f"ambiguous: {error}")
        except HTTPError as error:
            return self._refused(error, settings, limiter, message)
        finally:
            metrics.PROVIDER_SECONDS.labels(NAME).observe(time.perf_counter() - started)
        _count("ok")
        return _judge(data)

    def _refused(self, error: HTTPError, settings: TelnyxSettings, limiter: RateLimiter,
                 message: OutboundMessage) -> SendResult:
        code = error.code or f"HTTP_{error.status}"
        if error.status in (401, 403) or code in ACCOUNT:
            _count("auth")
            reason = (f"Telnyx refused the account ({error}): check {CREDENTIALS}, the "
                      "account's balance and the messaging profile")
            if self.pause.start(reason, code, settings.auth_retry_interval,
                                _credentials(settings)):
                log.error("%s; sending paused for up to %.0fs (readiness reports it)",
                          reason, settings.auth_retry_interval)
            return SendResult(Outcome.PAUSED, code=code, reason=reason)
        if error.status == 429 or code in TRANSIENT:
            _count("rate_limited" if error.status == 429 else "retry")
            wait = error.reset if error.reset is not None else 1.0
            limiter.hold(wait)
            log.warning("Telnyx asks to slow down (%s): %s retries in %.1fs", error,
                        message.id, wait)
            return SendResult(Outcome.RETRY, code=code, reason=f"Telnyx: {error}",
                              retry_after=wait)
        if code == OPT_OUT_CODE:
            _count("client_error")
            log.warning("Telnyx refused %s: the recipient opted out (STOP)", message.id)
            return opted_out(code, f"recipient opted out (STOP) at Telnyx: {error}")
        if error.status == 503:
            _count("server_error")  # not taken: Telnyx is unavailable
            return SendResult(Outcome.RETRY, code=code, reason=f"Telnyx unavailable: {error}")
        if error.status >= 500 or code == UNEXPECTED or error.status == 408:
            _count("server_error")
            log.warning("Telnyx send of %s is ambiguous: %s", message.id, error)
            return SendResult(Outcome.AMBIGUOUS, code=code, reason=f"ambiguous: {error}")
        _count("client_error")
        log.error("Telnyx refused %s: %s", message.id, error)
        if code in CONFIGURATION:
            return SendResult(Outcome.FAILED, code=code, reason=(
                f"Telnyx refused it, the setup needs fixing: {error} (see `pbxsms doctor` "
                "and docs/telnyx-setup.md)"))
        return SendResult(Outcome.FAILED, code=code, reason=f"Telnyx refused it: {error}")


def _judge(data: dict[str, object]) -> SendResult:
    message_id = data.get("id")
    if not isinstance(message_id, str) or not message_id:
        return SendResult(Outcome.AMBIGUOUS, code="NO_MESSAGE_ID",
                          reason="ambiguous: Telnyx answered 200 without a message id")
    details: dict[str, object] = {key: data[key] for key in ("parts", "encoding")
                                  if data.get(key) is not None}
    recipients = data.get("to")
    first = recipients[0] if isinstance(recipients, list) and recipients else None
    if isinstance(first, dict) and isinstance(first.get("status"), str):
        details["status"] = first["status"]
    return SendResult(Outcome.ACCEPTED, provider_message_id=message_id, details=details)


def _credentials(settings: TelnyxSettings) -> str:
    return fingerprint(settings.base_url, settings.key)


def _count(result: str) -> None:
    metrics.PROVIDER_REQUESTS.labels(NAME, result).inc()
