"""A small client of Bandwidth's Messaging API v2 with OAuth2 client credentials: send a
message, fetch the application (a read-only check).

The access token is asked once and reused until shortly before it expires (or until
Bandwidth refuses it). Failures raise one of three errors that say whether the request
can have reached Bandwidth:

- `NotSent`: it never left: safe to retry.
- `NoAnswer`: it may have been processed: a send is ambiguous.
- `HTTPError`: Bandwidth answered an error status, with its `type` and `description`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import ClientSession, ClientTimeout

from pbxsms.core.plugin_api import (
    OutboundMessage,
    __version__,
    hide_url_password,
)
from pbxsms.plugins.bandwidth.settings import BandwidthSettings

CONNECT_TIMEOUT = 10.0
# A token is renewed this long before Bandwidth says it expires.
TOKEN_MARGIN = 60.0

JsonDict = dict[str, Any]


class BandwidthError(Exception):
    """A Bandwidth call failed; the message is fit for operators (no secrets)."""


class NotSent(BandwidthError):
    """The request never reached Bandwidth."""


class NoAnswer(BandwidthError):
    """The request went out but no usable answer came back."""


@dataclass
class HTTPError(BandwidthError):
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
    headers = {"Authorization": "Basic " + base64.b64encode(pair).decode(),
               "Accept": "application/json", "User-Agent": f"pbxsms/{__version__}"}
    timeout = ClientTimeout(total=None, connect=CONNECT_TIMEOUT, sock_read=settings.timeout)
    try:
        async with http.post(settings.token_url, data={"grant_type": "client_credentials"},
                             headers=headers, timeout=timeout) as response:
            text, status = await response.text(), response.status
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
        raise NotSent(f"cannot reach Bandwidth's token endpoint "
                      f"{hide_url_password(settings.token_url)}: {error}") from error
    except (aiohttp.ClientError, TimeoutError) as error:
        # No message was sent: asking for a token again is safe.
        raise NotSent(f"no answer from Bandwidth's token endpoint: {error!r}") from error
    body = _json(text) or {}
    if status != 200:
        raise HTTPError(status, str(body.get("error") or ""),
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
        self.base_url = settings.base_url.rstrip("/")

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
        timeout = ClientTimeout(total=None, connect=CONNECT_TIMEOUT,
                                sock_read=self.settings.timeout)
        headers = {"Accept": "application/json", "User-Agent": f"pbxsms/{__version__}",
                   "Authorization": f"Bearer {token}"}
        try:
            async with self.http.request(method, self.base_url + path, json=body,
                                         headers=headers, timeout=timeout) as response:
                text, status = await response.text(), response.status
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
            raise NotSent(f"cannot reach Bandwidth at {hide_url_password(self.base_url)}: "
                          f"{type(error).__name__}: {error}") from error
        except (aiohttp.ClientError, TimeoutError) as error:
            raise NoAnswer(f"no answer from Bandwidth: {type(error).__name__}: {error}"
                           .rstrip(": ")) from error
        answer = _json(text)
        if 200 <= status < 300:
            if answer is None:
                raise NoAnswer(f"Bandwidth answered {status} with a body that is not JSON")
            return answer
        answer = answer or {}
        fields = [f"{item.get('fieldName')}: {item.get('description')}"
                  for item in answer.get("fieldErrors") or [] if isinstance(item, dict)]
        raise HTTPError(status, str(answer.get("type") or "")[:80],
                        str(answer.get("description") or "")[:300], fields[:5])


def _json(text: str) -> JsonDict | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
