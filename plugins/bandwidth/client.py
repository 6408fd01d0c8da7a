"""A small client of Bandwidth's Messaging API v2 with OAuth2 client credentials: send a
message, fetch the application (a read-only check).

The access token is asked once and reused until shortly before it expires (or until
Bandwidth refuses it). Failures raise the plugin API's `NotSent` / `NoAnswer` (whether
the request can have reached Bandwidth), or `HTTPError` when Bandwidth answered an error
status, with its `type` and `description`.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession

from pbxsms.core.plugin_api import CarrierError, CarrierHTTP, NoAnswer, NotSent, OutboundMessage
from pbxsms.plugins.bandwidth.settings import BandwidthSettings

# A token is renewed this long before Bandwidth says it expires.
TOKEN_MARGIN = 60.0

JsonDict = dict[str, Any]


@dataclass
class HTTPError(CarrierError):
    """Bandwidth answered an error status, with its `type` and `description`."""

    status: int
    type: str = ""
    description: str = ""
    fields: list[str] = field(default_factory=list)
    token: bool = False  # the OAuth token endpoint refused the client

    def __str__(self) -> str:
        detail = " ".join(part for part in (self.type, self.description, *self.fields) if part)
        where = "token endpoint " if self.token else ""
        return f"{where}HTTP {self.status}" + (f" {detail}" if detail else "")


def message_body(message: OutboundMessage, settings: BandwidthSettings) -> JsonDict:
    """One recipient (`to[]` of several is a group message); our id travels as `tag` and
    comes back in every callback."""
    return {"applicationId": settings.application_id, "to": [message.to],
            "from": message.from_, "text": message.body, "tag": message.id}


@dataclass
class Token:
    value: str
    expires: float


class TokenCache:
    """The access token per OAuth client, shared by every call of one provider."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, str], Token] = {}
        self._lock = asyncio.Lock()
        self.fetched = 0

    def forget(self, settings: BandwidthSettings) -> None:
        self._tokens.pop(_client(settings), None)

    async def token(self, http: ClientSession, settings: BandwidthSettings) -> str:
        async with self._lock:
            key = _client(settings)
            cached = self._tokens.get(key)
            if cached is not None and time.monotonic() < cached.expires:
                return cached.value
            token = await _fetch_token(http, settings)
            self._tokens[key] = token
            self.fetched += 1
            return token.value


def _client(settings: BandwidthSettings) -> tuple[str, str, str]:
    return settings.token_url, settings.client_id or "", settings.secret


async def _fetch_token(http: ClientSession, settings: BandwidthSettings) -> Token:
    pair = f"{settings.client_id or ''}:{settings.secret}".encode()
    endpoint = CarrierHTTP(http, "Bandwidth's token endpoint", settings.token_url,
                           settings.timeout)
    try:
        answer = await endpoint.call("POST", "", "Basic " + base64.b64encode(pair).decode(),
                                     form={"grant_type": "client_credentials"})
    except NoAnswer as error:
        # No message was sent: asking for a token again is safe.
        raise NotSent(str(error)) from error
    body = answer.body or {}
    if answer.status != 200:
        raise HTTPError(answer.status, str(body.get("error") or ""),
                        str(body.get("error_description") or ""), token=True)
    value, lifetime = body.get("access_token"), body.get("expires_in")
    if not isinstance(value, str) or not value:
        raise NotSent("Bandwidth's token endpoint answered without an access_token")
    seconds = float(lifetime) if isinstance(lifetime, int | float) else 3600.0
    return Token(value, time.monotonic() + max(seconds - TOKEN_MARGIN, seconds / 2))


class BandwidthClient:
    """Calls Bandwidth with the given settings over a shared aiohttp session."""

    def __init__(self, http: ClientSession, settings: BandwidthSettings,
                 tokens: TokenCache) -> None:
        self.http = http
        self.settings = settings
        self.tokens = tokens
        self.carrier = CarrierHTTP(http, "Bandwidth", settings.base_url, settings.timeout)

    async def send(self, message: OutboundMessage) -> JsonDict:
        """`POST /users/{accountId}/messages`: the message object Bandwidth accepted (202)."""
        data = await self.request("POST", f"/users/{self.settings.account_id}/messages",
                                  message_body(message, self.settings))
        if not isinstance(data, dict):
            raise NoAnswer("Bandwidth's answer is not a message object")
        return data

    async def request(self, method: str, path: str, body: JsonDict | None = None) -> Any:
        """One call; a refused token is renewed once (it may have been revoked early)."""
        for attempt in (1, 2):
            token = await self.tokens.token(self.http, self.settings)
            try:
                return await self._call(method, path, body, token)
            except HTTPError as error:
                if error.status != 401 or attempt == 2:
                    raise
                self.tokens.forget(self.settings)
        raise AssertionError("unreachable")

    async def _call(self, method: str, path: str, body: JsonDict | None, token: str) -> Any:
        answer = await self.carrier.call(method, path, f"Bearer {token}", json=body)
        if answer.ok:
            return answer.json()
        found = answer.body or {}
        fields = [f"{item.get('fieldName')}: {item.get('description')}"
                  for item in found.get("fieldErrors") or [] if isinstance(item, dict)]
        raise HTTPError(answer.status, str(found.get("type") or "")[:80],
                        str(found.get("description") or "")[:300], fields[:5])
