"""What every `/v3/*` call passes through before its endpoint: recording, injected faults,
Basic authentication, the account's state and ClickSend's rate limits."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, get_args

from aiohttp import web

from pbxsms.sim.clicksend.api import SEND_PATH, not_found, server_error, too_many, unauthorized
from pbxsms.sim.clicksend.state import Account, ClickSendState, RecordedRequest
from pbxsms.sim.server import FaultPlan, answered, drop_connection, json_response

FaultKind = Literal["429", "500", "store_then_500", "drop", "delay"]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)

Endpoint = Callable[[web.Request, Account, RecordedRequest], Awaitable[web.Response]]


@dataclass
class Fault:
    """One queued misbehaviour; `endpoint=None` applies it to any `/v3/*` path."""

    kind: FaultKind
    retry_after: int = 1
    delay: float = 0.0
    endpoint: str | None = SEND_PATH

    def applies_to(self, path: str) -> bool:
        return self.endpoint is None or self.endpoint == path


class RateLimits:
    """Fixed 60 s windows per (account, endpoint), as the rate-limit headers describe."""

    def __init__(self, state: ClickSendState) -> None:
        self.settings = state.settings
        self._buckets: dict[tuple[str, str], tuple[float, int]] = {}

    def reset(self) -> None:
        self._buckets.clear()

    def count(self, account: Account, path: str) -> tuple[int, int, int, bool]:
        """Count a call: limit, remaining, seconds to the window's reset, over the limit."""
        limit = self.settings.endpoint_rate_limits.get(path, self.settings.rate_limit)
        now = time.monotonic()
        key = (account.username, path)
        start, used = self._buckets.get(key, (now, 0))
        if now - start >= 60:
            start, used = now, 0
        used += 1
        self._buckets[key] = (start, used)
        reset = max(1, math.ceil(60 - (now - start)))
        return limit, max(limit - used, 0), reset, used > limit


def authenticate(state: ClickSendState, header: str | None) -> Account | None:
    """The account of a Basic `username:api_key` header, or None."""
    if not header or not header.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, api_key = decoded.partition(":")
    account = state.accounts.get(username)
    if not sep or account is None:
        return None
    if not hmac.compare_digest(account.api_key.encode(), api_key.encode()):
        return None
    return account


class Gate:
    """Runs one `/v3/*` call: records it, applies a queued fault, authenticates, counts it
    against the rate limit and hands it to its endpoint."""

    def __init__(self, state: ClickSendState, pause: Callable[[float], Awaitable[None]]) -> None:
        self.state = state
        self.faults: FaultPlan[Fault] = FaultPlan()
        self.rates = RateLimits(state)
        self._pause = pause

    async def serve(self, request: web.Request, endpoint: Endpoint | None) -> web.StreamResponse:
        rec = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
        )
        self.state.requests.append(rec)
        if endpoint is None:
            # Route matching comes before authentication, as in any Laravel app.
            return answered(rec, json_response(404, not_found()))

        fault = self.faults.take(lambda f: f.applies_to(request.path))
        if fault is not None:
            rec.fault = fault.kind
            if fault.kind == "drop":
                return drop_connection(request)

        if request.can_read_body:
            raw = await request.text()
            try:
                rec.body = json.loads(raw)
            except ValueError:
                rec.body = raw

        if fault is not None:
            # The body is in before the delay, so a client that times out has still sent it.
            if fault.kind == "delay":
                await self._pause(fault.delay)
            elif fault.kind == "429":
                headers = {"Retry-After": str(fault.retry_after)}
                return answered(rec, json_response(429, too_many(), headers))
            elif fault.kind == "500":
                return answered(rec, json_response(500, server_error()))

        account = authenticate(self.state, request.headers.get("Authorization"))
        if account is None or account.state == "notactive":
            # Identical for missing, wrong and not-yet-activated credentials; no WWW-Authenticate.
            return answered(rec, json_response(401, unauthorized()))
        if account.state == "banned":
            suspended = {
                "response_code": "FORBIDDEN",
                "response_msg": "Your account is suspended. Please contact support for more "
                "information.",
            }
            return answered(rec, json_response(403, suspended))

        limit, remaining, reset, exceeded = self.rates.count(account, request.path)
        if exceeded and self.state.settings.enforce_rate_limits:
            headers = {"Retry-After": str(reset)}
            return answered(rec, json_response(429, too_many(), headers))

        response = await endpoint(request, account, rec)
        response.headers["x-ratelimit-limit"] = str(limit)
        response.headers["x-ratelimit-remaining"] = str(remaining)
        response.headers["ratelimit-reset"] = str(reset)
        if fault is not None and fault.kind == "store_then_500":
            response = json_response(500, server_error())
        return answered(rec, response)
