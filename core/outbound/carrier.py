"""Calling a carrier's REST API: one request over the shared aiohttp session, sorted into
"never sent", "sent but no usable answer" and "answered" (with the JSON object, if any).

Carriers document no idempotency key for a send, so whether a failed request can have
reached them decides what happens next: `NotSent` is safe to retry, `NoAnswer` makes a
send ambiguous. Error statuses are the carrier's business: a plugin reads `Answer` and
raises its own `CarrierError` subclass with the carrier's error fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from aiohttp import ClientSession, ClientTimeout

from pbxsms.core import __version__
from pbxsms.core.config.loader import hide_url_password
from pbxsms.core.model.events import utcnow

# Connecting is quick or fails; the read waits up to the plugin's own timeout.
CONNECT_TIMEOUT = 10.0

JsonDict = dict[str, Any]


class CarrierError(Exception):
    """A carrier call failed; the message is fit for operators (no secrets)."""


class NotSent(CarrierError):
    """The request never reached the carrier (refused, DNS, connect timeout): safe to retry."""


class NoAnswer(CarrierError):
    """The request went out but no usable answer came back (read timeout, dropped
    connection, unreadable answer): a send is ambiguous."""


@dataclass(frozen=True)
class Answer:
    """What the carrier answered: its status, headers and JSON object (None if not one)."""

    carrier: str
    status: int
    headers: Mapping[str, str]
    body: JsonDict | None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> JsonDict:
        """The JSON object of a 2xx answer; `NoAnswer` when the body is not one."""
        if self.body is None:
            raise NoAnswer(f"{self.carrier} answered {self.status} with a body that is not JSON")
        return self.body


class CarrierHTTP:
    """Requests to one carrier's base URL; `carrier` names it in operators' messages."""

    def __init__(self, http: ClientSession, carrier: str, base_url: str,
                 timeout: float) -> None:
        self.http = http
        self.carrier = carrier
        self.base_url = base_url.rstrip("/")
        self.timeout = ClientTimeout(total=None, connect=CONNECT_TIMEOUT, sock_read=timeout)

    async def call(self, method: str, path: str, authorization: str, *,
                   json: JsonDict | None = None, form: Mapping[str, str] | None = None,
                   query: Mapping[str, str | int] | None = None) -> Answer:
        """One request to `base_url + path`; raises `NotSent` or `NoAnswer` as above."""
        headers = {"Accept": "application/json", "User-Agent": f"pbxsms/{__version__}",
                   "Authorization": authorization}
        try:
            async with self.http.request(method, self.base_url + path, json=json, data=form,
                                         params=query, headers=headers,
                                         timeout=self.timeout) as response:
                text = await response.text()
                status, response_headers = response.status, response.headers
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
            raise NotSent(f"cannot reach {self.carrier} at {hide_url_password(self.base_url)}: "
                          f"{type(error).__name__}: {error}") from error
        except (aiohttp.ClientError, TimeoutError) as error:
            raise NoAnswer(f"no answer from {self.carrier}: {type(error).__name__}: {error}"
                           .rstrip(": ")) from error
        return Answer(self.carrier, status, response_headers, json_object(text))


def json_object(text: str) -> JsonDict | None:
    """`text` parsed as a JSON object; None for anything else (a carrier's HTML error page)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def retry_after(value: str | None, default: float | None = None) -> float | None:
    """Seconds from a `Retry-After`-style header (seconds or an HTTP date), at least 0;
    `default` when it is missing or unreadable."""
    if not value:
        return default
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max((parsedate_to_datetime(value) - utcnow()).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return default
