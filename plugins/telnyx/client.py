"""A small client of Telnyx's API v2: send a message, list messaging profiles.

Every call carries `Authorization: Bearer <TELNYX_API_KEY>` and answers the `data` of
Telnyx's envelope; failures raise one of three errors that say whether the request can
have reached Telnyx (a send has no confirmed idempotency key):

- `NotSent`: it never left (connection refused, DNS, connect timeout): safe to retry.
- `NoAnswer`: it may have been processed (read timeout, dropped connection, unreadable
  answer): a send is ambiguous.
- `HTTPError`: Telnyx answered an error status with its `errors[]` (code, title, detail).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import ClientSession, ClientTimeout

from pbxsms.core.plugin_api import (
    OutboundMessage,
    __version__,
    hide_url_password,
)
from pbxsms.plugins.telnyx.settings import TelnyxSettings

MESSAGES_PATH = "/v2/messages"
PROFILES_PATH = "/v2/messaging_profiles"
CONNECT_TIMEOUT = 10.0

JsonDict = dict[str, Any]


class TelnyxError(Exception):
    """A Telnyx call failed; the message is fit for operators (no secrets)."""


class NotSent(TelnyxError):
    """The request never reached Telnyx."""


class NoAnswer(TelnyxError):
    """The request went out but no usable answer came back."""


@dataclass
class HTTPError(TelnyxError):
    """Telnyx answered an error status; `errors` as (code, title, detail)."""

    status: int
    errors: list[tuple[str, str, str]] = field(default_factory=list)
    # `x-ratelimit-reset` (seconds) of a 429, when given.
    reset: float | None = None

    @property
    def code(self) -> str | None:
        return self.errors[0][0] if self.errors else None

    def __str__(self) -> str:
        detail = "; ".join(" ".join(part for part in (code, title, text) if part)
                           for code, title, text in self.errors)
        return f"HTTP {self.status}" + (f" {detail}" if detail else "")


def message_body(message: OutboundMessage, settings: TelnyxSettings) -> JsonDict:
    """`POST /v2/messages`: one recipient per call. Telnyx echoes nothing of ours, so
    receipts find the message by Telnyx's id, stored when the send is accepted."""
    body: JsonDict = {"from": message.from_, "to": message.to, "text": message.body,
                      "type": "SMS"}
    if settings.messaging_profile_id:
        body["messaging_profile_id"] = settings.messaging_profile_id
    return body


class TelnyxClient:
    """Calls Telnyx with the given settings over a shared aiohttp session."""

    def __init__(self, http: ClientSession, settings: TelnyxSettings) -> None:
        self.http = http
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")

    async def send(self, message: OutboundMessage) -> JsonDict:
        """The outbound message record (`id`, `to[0].status`, `parts`, ...)."""
        data = await self.request("POST", MESSAGES_PATH, message_body(message, self.settings))
        if not isinstance(data, dict):
            raise NoAnswer("Telnyx's answer has no data object")
        return data

    async def messaging_profiles(self) -> list[JsonDict]:
        """The first page of messaging profiles (a read-only check of the key)."""
        data = await self.request("GET", PROFILES_PATH)
        return [item for item in data if isinstance(item, dict)] if isinstance(data, list) \
            else []

    async def request(self, method: str, path: str, body: JsonDict | None = None) -> Any:
        timeout = ClientTimeout(total=None, connect=CONNECT_TIMEOUT,
                                sock_read=self.settings.timeout)
        headers = {"Accept": "application/json", "User-Agent": f"pbxsms/{__version__}",
                   "Authorization": f"Bearer {self.settings.key}"}
        try:
            async with self.http.request(method, self.base_url + path, json=body,
                                         headers=headers, timeout=timeout) as response:
                text = await response.text()
                status, reset = response.status, response.headers.get("x-ratelimit-reset")
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
            raise NotSent(f"cannot reach Telnyx at {hide_url_password(self.base_url)}: "
                          f"{type(error).__name__}: {error}") from error
        except (aiohttp.ClientError, TimeoutError) as error:
            raise NoAnswer(f"no answer from Telnyx: {type(error).__name__}: {error}"
                           .rstrip(": ")) from error
        envelope = _json(text)
        if 200 <= status < 300:
            if envelope is None:
                raise NoAnswer(f"Telnyx answered {status} with a body that is not JSON")
            return envelope.get("data")
        raise HTTPError(status, _errors(envelope), _seconds(reset) if status == 429 else None)


def _errors(envelope: JsonDict | None) -> list[tuple[str, str, str]]:
    found = []
    items = envelope.get("errors") if envelope else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            found.append((str(item.get("code") or "")[:16], str(item.get("title") or "")[:200],
                          str(item.get("detail") or "")[:300]))
    return found


def _seconds(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None


def _json(text: str) -> JsonDict | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
