"""A small client of Telnyx's API v2: send a message, list messaging profiles.

Every call carries `Authorization: Bearer <TELNYX_API_KEY>` and answers the `data` of
Telnyx's envelope; failures raise the plugin API's `NotSent` / `NoAnswer` (whether the
request can have reached Telnyx: a send has no confirmed idempotency key), or `HTTPError`
when Telnyx answered an error status with its `errors[]` (code, title, detail).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession

from pbxsms.core.plugin_api import (
    CarrierError,
    CarrierHTTP,
    NoAnswer,
    OutboundMessage,
    retry_after,
)
from pbxsms.plugins.telnyx.settings import TelnyxSettings

MESSAGES_PATH = "/v2/messages"
PROFILES_PATH = "/v2/messaging_profiles"

JsonDict = dict[str, Any]


@dataclass
class HTTPError(CarrierError):
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
        self.settings = settings
        self.carrier = CarrierHTTP(http, "Telnyx", settings.base_url, settings.timeout)

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
        answer = await self.carrier.call(method, path, f"Bearer {self.settings.key}",
                                         json=body)
        if answer.ok:
            return answer.json().get("data")
        raise HTTPError(answer.status, _errors(answer.body),
                        retry_after(answer.headers.get("x-ratelimit-reset"))
                        if answer.status == 429 else None)


def _errors(envelope: JsonDict | None) -> list[tuple[str, str, str]]:
    found = []
    items = envelope.get("errors") if envelope else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            found.append((str(item.get("code") or "")[:16], str(item.get("title") or "")[:200],
                          str(item.get("detail") or "")[:300]))
    return found

