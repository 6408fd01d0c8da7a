"""A small client of Twilio's REST API 2010-04-01: create a message, list messages, read
the account and its numbers.

Every call uses HTTP Basic auth (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN), sends forms and
reads JSON. Failures raise one of three errors that say whether the request can have
reached Twilio, because Twilio documents no idempotency key for creating a message:

- `NotSent`: it never left (connection refused, DNS, connect timeout): safe to retry.
- `NoAnswer`: it may have been processed (read timeout, dropped connection, unreadable
  answer): a send is ambiguous.
- `TwilioError`: Twilio answered an error status, with its `{code, message, more_info,
  status}` body when it gave one.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import ClientSession, ClientTimeout

from pbxsms.core.plugin_api import __version__, hide_url_password
from pbxsms.plugins.twilio.settings import TwilioSettings

API = "/2010-04-01"
CONNECT_TIMEOUT = 10.0
# Enough to find a message created moments ago among the newest between two numbers.
LOOKUP_PAGE_SIZE = 50

JsonDict = dict[str, Any]


class TwilioClientError(Exception):
    """A Twilio call failed; the message is fit for operators (no secrets)."""


class NotSent(TwilioClientError):
    """The request never reached Twilio."""


class NoAnswer(TwilioClientError):
    """The request went out but no usable answer came back."""


@dataclass
class TwilioError(TwilioClientError):
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
        self.http = http
        self.base_url = settings.base_url.rstrip("/")
        self.account_sid = settings.account_sid or ""
        self.timeout = settings.timeout
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
        timeout = ClientTimeout(total=None, connect=CONNECT_TIMEOUT, sock_read=self.timeout)
        headers = {"Accept": "application/json", "User-Agent": f"pbxsms/{__version__}",
                   "Authorization": self._authorization}
        url = self.base_url + path
        try:
            async with self.http.request(method, url, data=form, params=query,
                                         headers=headers, timeout=timeout) as response:
                text = await response.text()
                status, retry_after = response.status, response.headers.get("Retry-After")
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
            raise NotSent(f"cannot reach Twilio at {hide_url_password(self.base_url)}: "
                          f"{type(error).__name__}: {error}") from error
        except (aiohttp.ClientError, TimeoutError) as error:
            raise NoAnswer(f"no answer from Twilio: {type(error).__name__}: {error}"
                           .rstrip(": ")) from error
        body = _json(text)
        if 200 <= status < 300:
            if body is None:
                raise NoAnswer(f"Twilio answered {status} with a body that is not JSON")
            return body
        body = body or {}
        code = body.get("code")
        raise TwilioError(status, code if isinstance(code, int) else 0,
                          str(body.get("message") or ""), str(body.get("more_info") or ""),
                          _seconds(retry_after) if status == 429 else None)


def _json(text: str) -> JsonDict | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _seconds(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None

