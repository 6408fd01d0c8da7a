"""How a provider paces its calls: a client-side rate limit that a carrier's 429 can hold,
and the pause of sending after the carrier refused the account (401/403).

Providers own one of each; the dispatcher only sees the outcomes they lead to (a held
limiter delays the call; a pause answers `Outcome.PAUSED` at once, without a call).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass

from pbxsms.core.health import metrics
from pbxsms.core.registry import Outcome, SendResult


class RateLimiter:
    """Token bucket: `rate` calls per second, bursts of up to `rate`; `hold` stops calls
    for a while (a 429's `Retry-After`). Callers go in arrival order."""

    def __init__(self) -> None:
        self._tokens = 1.0
        self._updated = time.monotonic()
        self._held_until = 0.0
        self._lock = asyncio.Lock()

    def hold(self, seconds: float) -> None:
        self._held_until = max(self._held_until, time.monotonic() + seconds)

    async def acquire(self, rate: float) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                if now < self._held_until:
                    await asyncio.sleep(self._held_until - now)
                    continue
                burst = max(rate, 1.0)
                self._tokens = min(burst, self._tokens + (now - self._updated) * rate)
                self._updated = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self._tokens) / rate)


def fingerprint(*secrets: str | None) -> str:
    """A digest of the credentials in force: new credentials end a pause at once."""
    return hashlib.sha256("\0".join(s or "" for s in secrets).encode()).hexdigest()


@dataclass(frozen=True)
class Pause:
    """Sending paused after the carrier refused the account."""

    reason: str
    code: str
    until: float
    credentials: str


class AccountPause:
    """The pause of one provider: started on a refused account, ended by new credentials
    (a reload) or after `interval`; `pbxsms_provider_paused` follows it."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self._pause: Pause | None = None

    def start(self, reason: str, code: str, interval: float, credentials: str) -> bool:
        """Pause (again); True when sending was not paused before."""
        new = self._pause is None
        metrics.PROVIDER_ACCOUNT_ERRORS.labels(self.provider, code).inc()
        metrics.PROVIDER_PAUSED.labels(self.provider).set(1)
        self._pause = Pause(reason, code, time.monotonic() + interval, credentials)
        return new

    def current(self, credentials: str) -> Pause | None:
        """The pause in force for these credentials, if any."""
        pause = self._pause
        if pause is not None and (pause.credentials != credentials
                                  or time.monotonic() >= pause.until):
            self._pause = pause = None
            metrics.PROVIDER_PAUSED.labels(self.provider).set(0)
        return pause

    def readiness(self, credentials: str) -> list[str]:
        """What `/readyz` reports while paused (the gateway stays ready: inbound goes on)."""
        pause = self.current(credentials)
        if pause is None:
            return []
        left = max(pause.until - time.monotonic(), 0.0)
        return [f"{self.provider}: sending paused: {pause.reason}; fix the settings and run "
                f"`pbxsms reload`, or it tries again in {left:.0f}s"]


class CarrierGate:
    """Whether a carrier may be called now, per account: configured, not paused, and within
    its rate (the wait happens here). One per provider, so each carrier does not repeat it."""

    def __init__(self, name: str, label: str) -> None:
        self.label = label
        self.pause = AccountPause(name)
        self._limiters: dict[str, RateLimiter] = {}

    async def admit(self, configured: bool, missing: str, account: str,
                    rate: float) -> RateLimiter | SendResult:
        """The account's limiter once a call may go (its 429s hold it), else the result
        to answer without a call."""
        if not configured:
            return SendResult(Outcome.FAILED, code="NOT_CONFIGURED",
                              reason=f"{self.label} is not configured: set {missing}")
        pause = self.pause.current(account)
        if pause is not None:
            return SendResult(Outcome.PAUSED, code=pause.code, reason=pause.reason)
        limiter = self._limiters.setdefault(account, RateLimiter())
        await limiter.acquire(rate)
        return limiter
