"""A small client of ClickSend's REST API v3: send SMS, subaccounts, numbers, account.

Every call uses HTTP Basic auth (CLICKSEND_USERNAME, CLICKSEND_API_KEY) and answers the
envelope's `data`; failures raise the plugin API's `NotSent` / `NoAnswer` (whether the
request can have reached ClickSend: there is no idempotency key for sends), or
`HTTPError` when ClickSend answered with an error status (`Unauthorized` for 401).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
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
from pbxsms.plugins.clicksend.settings import ClickSendSettings

SEND_PATH = "/v3/sms/send"
HISTORY_PATH = "/v3/sms/history"
MAX_MESSAGES = 1000
SOURCE = "pbxsms"
PAGE_LIMIT = 100
MAX_PAGES = 1000

JsonDict = dict[str, Any]


@dataclass
class HTTPError(CarrierError):
    """ClickSend answered with an error status and (usually) its envelope."""

    status: int
    response_code: str = ""
    response_msg: str = ""
    data: Any = None
    retry_after: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        detail = " ".join(part for part in (self.response_code, self.response_msg) if part)
        return f"HTTP {self.status}" + (f" {detail}" if detail else "")


class Unauthorized(HTTPError):
    """401: ClickSend refused CLICKSEND_USERNAME / CLICKSEND_API_KEY."""

    def __str__(self) -> str:
        return (f"ClickSend refused the credentials ({super().__str__()}): check "
                "CLICKSEND_USERNAME and CLICKSEND_API_KEY")


def sms_message(message: OutboundMessage) -> JsonDict:
    """One entry of `messages[]`: our id travels as `custom_string` and comes back in
    replies and delivery receipts."""
    return {"to": message.to, "from": message.from_, "body": message.body,
            "source": SOURCE, "custom_string": message.id}


class ClickSendClient:
    """Calls ClickSend with the given settings over a shared aiohttp session."""

    def __init__(self, http: ClientSession, settings: ClickSendSettings) -> None:
        self.carrier = CarrierHTTP(http, "ClickSend", settings.base_url, settings.timeout)
        key = settings.api_key.get_secret_value() if settings.api_key else ""
        token = base64.b64encode(f"{settings.username or ''}:{key}".encode()).decode()
        self._authorization = f"Basic {token}"

    async def send_sms(self, messages: list[JsonDict]) -> JsonDict:
        """`POST /v3/sms/send`; the `data` with a per-message `status` for each."""
        if not 0 < len(messages) <= MAX_MESSAGES:
            raise ValueError(f"1 to {MAX_MESSAGES} messages per call, not {len(messages)}")
        data = await self.request("POST", SEND_PATH, body={"messages": messages})
        if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
            raise NoAnswer("ClickSend's answer has no data.messages list")
        return data

    async def account(self) -> JsonDict:
        data = await self.request("GET", "/v3/account")
        return data if isinstance(data, dict) else {}

    async def subaccounts(self) -> list[JsonDict]:
        """Every subaccount, all pages. Records carry live API keys: never print them."""
        return await self.all_pages("/v3/subaccounts")

    async def numbers(self) -> list[JsonDict]:
        """The account's dedicated numbers, all pages."""
        return await self.all_pages("/v3/numbers")

    async def sms_history(self, date_from: int, date_to: int) -> list[JsonDict]:
        """`GET /v3/sms/history` between two unix times (seconds), all pages: the messages
        ClickSend stored, each with `message_id`, `custom_string`, `to`, `status`, `date`."""
        return await self.all_pages(HISTORY_PATH, {"date_from": date_from, "date_to": date_to})

    async def all_pages(self, path: str, query: Mapping[str, str | int] | None = None
                        ) -> list[JsonDict]:
        """Follow the Laravel paginator (`last_page`, 0 for an empty list)."""
        items: list[JsonDict] = []
        page = 1
        while page <= MAX_PAGES:
            data = await self.request("GET", path,
                                      query={**(query or {}), "page": page, "limit": PAGE_LIMIT})
            if not isinstance(data, dict):
                raise NoAnswer(f"{path}: the answer has no paginated data")
            items.extend(item for item in data.get("data") or [] if isinstance(item, dict))
            last = data.get("last_page")
            if not isinstance(last, int) or page >= last:
                return items
            page += 1
        raise NoAnswer(f"{path}: more than {MAX_PAGES} pages")

    async def request(self, method: str, path: str, body: JsonDict | None = None,
                      query: Mapping[str, str | int] | None = None) -> Any:
        """One call; the envelope's `data` on 2xx, else an error as described above."""
        answer = await self.carrier.call(method, path, self._authorization, json=body,
                                         query=query)
        if answer.ok:
            return answer.json().get("data")
        kind = Unauthorized if answer.status == 401 else HTTPError
        envelope = answer.body or {}
        raise kind(answer.status, str(envelope.get("response_code") or ""),
                   str(envelope.get("response_msg") or ""), envelope.get("data"),
                   retry_after(answer.headers.get("Retry-After"), 1.0)
                   if answer.status == 429 else None, dict(answer.headers))
