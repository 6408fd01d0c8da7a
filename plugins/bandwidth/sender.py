"""Bandwidth as an outbound provider: one `POST /users/{accountId}/messages` per message
(`to[]` of several would be a group message), our id as `tag`, a client-side rate limit
that Bandwidth's 429 holds, and a pause after the client or account is refused.

Bandwidth says "any 4xx or 5xx HTTP response code will not be billed nor will the
message be sent": a 5xx is retried; only a lost answer is ambiguous.
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
)
from pbxsms.plugins.bandwidth.client import BandwidthClient, HTTPError, TokenCache
from pbxsms.plugins.bandwidth.settings import NAME, BandwidthSettings, bandwidth_settings

log = logging.getLogger("pbxsms.bandwidth")

CREDENTIALS = ("BANDWIDTH_ACCOUNT_ID, BANDWIDTH_APPLICATION_ID, BANDWIDTH_CLIENT_ID and "
               "BANDWIDTH_CLIENT_SECRET")


class BandwidthProvider:
    """The `bandwidth` provider; reads its settings per call, so a reload applies at once."""

    name = NAME
    max_batch = 1
    flush_delay = 0.0

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.tokens = TokenCache()
        self.gate = CarrierGate(NAME, "Bandwidth")
        self.pause = self.gate.pause

    @property
    def settings(self) -> BandwidthSettings:
        return bandwidth_settings(self.runtime.config)

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
        # Bandwidth fetches each picture from our signed link (PBXSMS_PUBLIC_URL).
        media_urls = await carrier_links(self.runtime, message.media, "Bandwidth")
        if isinstance(media_urls, SendResult):
            return media_urls
        metrics.PROVIDER_BATCH_SIZE.labels(NAME).observe(1)
        started = time.perf_counter()
        try:
            client = BandwidthClient(self.runtime.http, settings, self.tokens)
            data = await client.send(message, media_urls)
        except NotSent as error:
            _count("not_sent")
            log.warning("Bandwidth send of %s not sent, will retry: %s", message.id, error)
            return SendResult(Outcome.RETRY, code="NOT_SENT", reason=str(error))
        except NoAnswer as error:
            _count("no_answer")
            log.warning("Bandwidth send of %s is ambiguous: %s", message.id, error)
            return SendResult(Outcome.AMBIGUOUS, code="NO_ANSWER", reason=f"ambiguous: {error}")
        except HTTPError as error:
            return self._refused(error, settings, limiter, message)
        finally:
            metrics.PROVIDER_SECONDS.labels(NAME).observe(time.perf_counter() - started)
        message_id = data.get("id")
        if not isinstance(message_id, str) or not message_id:
            _count("no_answer")
            return SendResult(Outcome.AMBIGUOUS, code="NO_MESSAGE_ID",
                              reason="ambiguous: Bandwidth answered without a message id")
        _count("ok")
        details = {"segments": data["segmentCount"]} if isinstance(
            data.get("segmentCount"), int) else {}
        return SendResult(Outcome.ACCEPTED, provider_message_id=message_id, details=details)

    def _refused(self, error: HTTPError, settings: BandwidthSettings, limiter: RateLimiter,
                 message: OutboundMessage) -> SendResult:
        code = error.type or f"HTTP_{error.status}"
        if error.status in (401, 403) or (error.token and error.status == 400):
            _count("auth")
            reason = f"Bandwidth refused the {'OAuth client' if error.token else 'account'} " \
                     f"({error}): check {CREDENTIALS}"
            if self.pause.start(reason, f"HTTP_{error.status}", settings.auth_retry_interval,
                                _credentials(settings)):
                log.error("%s; sending paused for up to %.0fs (readiness reports it)",
                          reason, settings.auth_retry_interval)
            return SendResult(Outcome.PAUSED, code=f"HTTP_{error.status}", reason=reason)
        if error.status == 429:
            _count("rate_limited")
            limiter.hold(1.0)
            log.warning("Bandwidth's queue is full (429): %s retries later: %s", message.id,
                        error)
            return SendResult(Outcome.RETRY, code=code, reason=f"Bandwidth: {error}",
                              retry_after=1.0)
        if error.status >= 500:
            _count("server_error")  # not sent, not billed (Bandwidth's errors page)
            return SendResult(Outcome.RETRY, code=code, reason=f"Bandwidth: {error}")
        _count("client_error")
        log.error("Bandwidth refused %s: %s", message.id, error)
        return SendResult(Outcome.FAILED, code=code, reason=f"Bandwidth refused it: {error}")


def _credentials(settings: BandwidthSettings) -> str:
    return fingerprint(settings.base_url, settings.account_id, settings.client_id,
                       settings.secret)


def _count(result: str) -> None:
    metrics.PROVIDER_REQUESTS.labels(NAME, result).inc()
