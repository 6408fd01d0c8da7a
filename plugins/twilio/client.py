"""A small client of Twilio's REST API 2010-04-01: create a message, list messages, read
the account and its numbers.

Every call uses HTTP Basic auth (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN), sends forms and
reads JSON. Failures raise the plugin API's `NotSent` / `NoAnswer` (whether the request
can have reached Twilio: it documents no idempotency key for creating a message), or
`TwilioError` when Twilio answered an error status, with its `{code, message, more_info,
status}` body when it gave one.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientSession

from pbxsms.core.plugin_api import CarrierError, CarrierHTTP, NoAnswer, retry_after
from pbxsms.plugins.twilio.settings import TwilioSettings

API = "/2010-04-01"
# Enough to find a message created moments ago among the newest between two numbers.
LOOKUP_PAGE_SIZE = 50

JsonDict = dict[str, Any]


@dataclass
class TwilioError(CarrierError):
    """Twilio answered an error status; `code` is Twilio's error code (0 when none)."""

    status: int
    code: int = 0
    message: str = ""
    more_info: str = ""
    retry_after: float | None = None

    def __str__(self) -> str:
        code = f" error {self.code}" if self.code else ""
        text = f": {self.message}" if self.message else ""
        return f"HTTP {self.status}{code}{text}"


def messages_path(account_sid: str) -> str:
    return f"{API}/Accounts/{account_sid}/Messages.json"


class TwilioClient:
    """Calls Twilio with the given settings over a shared aiohttp session."""

    def __init__(self, http: ClientSession, settings: TwilioSettings) -> None:
        self.carrier = CarrierHTTP(http, "Twilio", settings.base_url, settings.timeout)
        self.account_sid = settings.account_sid or ""
        pair = f"{self.account_sid}:{settings.token}".encode()
        self._authorization = f"Basic {base64.b64encode(pair).decode()}"

    async def create_message(self, to: str, from_: str, body: str,
                             status_callback: str | None) -> JsonDict:
        """`POST .../Messages.json`: the new message resource (`sid`, `status`, ...)."""
        form = {"To": to, "From": from_, "Body": body}
        if status_callback:
            form["StatusCallback"] = status_callback
        answer = await self.request("POST", messages_path(self.account_sid), form=form)
        if not isinstance(answer.get("sid"), str) or not answer["sid"]:
            raise NoAnswer("Twilio's answer has no message sid")
        return answer

    async def recent_messages(self, to: str, from_: str) -> list[JsonDict]:
        """The newest messages from `from_` to `to` (one page, newest first)."""
        answer = await self.request("GET", messages_path(self.account_sid),
                                    query={"To": to, "From": from_,
                                           "PageSize": LOOKUP_PAGE_SIZE})
        messages = answer.get("messages")
        if not isinstance(messages, list):
            raise NoAnswer("Twilio's message list has no `messages`")
        return [message for message in messages if isinstance(message, dict)]

    async def incoming_number(self, number: str) -> JsonDict | None:
        """The account's IncomingPhoneNumber `number` (its `sms_url`, ...), None if not one."""
        answer = await self.request("GET",
                                    f"{API}/Accounts/{self.account_sid}/IncomingPhoneNumbers.json",
                                    query={"PhoneNumber": number})
        found = answer.get("incoming_phone_numbers")
        if not isinstance(found, list):
            raise NoAnswer("Twilio's number list has no `incoming_phone_numbers`")
        return next((n for n in found if isinstance(n, dict)
                     and n.get("phone_number") == number), None)

    async def account(self) -> JsonDict:
        """`GET /Accounts/{Sid}.json`. The answer holds the auth token: never print it."""
        return await self.request("GET", f"{API}/Accounts/{self.account_sid}.json")

    async def request(self, method: str, path: str, form: Mapping[str, str] | None = None,
                      query: Mapping[str, str | int] | None = None) -> JsonDict:
        """One call; the JSON object on 2xx, else an error as described above."""
        answer = await self.carrier.call(method, path, self._authorization, form=form,
                                         query=query)
        if answer.ok:
            return answer.json()
        body = answer.body or {}
        code = body.get("code")
        raise TwilioError(answer.status, code if isinstance(code, int) else 0,
                          str(body.get("message") or ""), str(body.get("more_info") or ""),
                          retry_after(answer.headers.get("Retry-After"))
                          if answer.status == 429 else None)
