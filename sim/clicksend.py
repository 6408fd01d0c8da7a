"""A local stand-in for ClickSend's REST API v3, for tests, demos and benchmarks.

Shapes follow the project's ClickSend research notes (the real send response, the Laravel
paginator, the error bodies seen by live probes). Where ClickSend documents nothing, the choice
made here is marked "undocumented" so nobody mistakes it for observed behaviour.

Besides ``/v3/*`` the server offers an unauthenticated control API under ``/_sim/`` to inject
faults, inspect what was sent and push inbound SMS and delivery receipts to a gateway.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Literal, get_args
from urllib.parse import urlencode

import phonenumbers
from aiohttp import web
from phonenumbers import PhoneNumber
from phonenumbers import carrier as pn_carrier
from phonenumbers.geodata.locale import LOCALE_DATA
from yarl import URL

from pbxsms.sim.server import (
    ControlHandler,
    JsonDict,
    SimulatedService,
    control_json,
    json_response,
    relay,
)

__all__ = [
    "HISTORY_PATH",
    "MAX_MESSAGES_PER_REQUEST",
    "SEND_PATH",
    "TEST_ACCOUNT_KEY",
    "TEST_NUMBERS",
    "Account",
    "ClickSendSimulator",
    "Fault",
    "FaultKind",
    "PushResult",
    "ReceiptFormat",
    "RecordedRequest",
    "WebhookType",
    "create_app",
    "message_parts",
    "serve_forever",
]

SEND_PATH = "/v3/sms/send"
HISTORY_PATH = "/v3/sms/history"
MAX_MESSAGES_PER_REQUEST = 1000

# Legacy doc, "Testing": accepted, never delivered, never charged.
TEST_NUMBERS = frozenset(
    {
        "+61411111111",
        "+61422222222",
        "+61433333333",
        "+61444444444",
        "+14055555555",
        "+14055555666",
        "+447777777777",
        "+8615555555555",
    }
)
# Legacy doc test accounts `nocredit`, `notactive` and `banned` all share this key.
TEST_ACCOUNT_KEY = "D83DED51-9E35-4D42-9BB9-0E34B7CA85AE"

FaultKind = Literal["429", "500", "store_then_500", "drop", "delay"]
WebhookType = Literal["post", "json", "get"]
ReceiptFormat = Literal["form", "json"]
AccountState = Literal["active", "nocredit", "notactive", "banned"]

_FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
_WEBHOOK_TYPES: tuple[str, ...] = get_args(WebhookType)

_USD = {
    "currency_name_short": "USD",
    "currency_prefix_d": "$",
    "currency_prefix_c": "¢",
    "currency_name_long": "US Dollars",
}

# value -> (label, description, name), as validated by the v6 SDK model.
_NUMBER_STATUS: dict[int, tuple[str, str, str]] = {
    0: ("REGISTRATION_NOT_REQUIRED", "Your number is ready to go.", "Ready to use"),
    1: (
        "REGISTRATION_NOT_INITIATED",
        "Your number is unregistered. You will not be able to send messages to certain countries.",
        "Unregistered",
    ),
    2: (
        "REGISTRATION_INITIATED",
        "Your number registration is in progress. Email updates will follow.",
        "Decision Pending",
    ),
    3: (
        "CUST_ACTION_REQUIRED",
        "Action required on your number registration. Please resolve to start using it.",
        "Action Required",
    ),
    4: (
        "REGISTRATION_SUBMITTED",
        "You can send to all countries but may get restricted to some before full registration.",
        "Limited Availability",
    ),
    5: (
        "REGISTERED",
        "Your number is registered and you can start using it immediately.",
        "Registered",
    ),
}

# Receipt defaults per gateway status_code: (status_text, error_code, error_text).
_RECEIPT_TEXT: dict[int, tuple[str, int | None, str | None]] = {
    200: ("Sent: Message sent to the network for delivery.", None, None),
    201: ("Success: Message received on handset.", None, None),
    300: ("Failed: Temporary network error, will be retried.", 16, "Temporary network error"),
    301: ("Failed: Unknown failure.", 7, "Unknown failure"),
}

_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")
_NUMERIC_SENDER = re.compile(r"\+?[0-9]{3,15}")
_ALPHA_SENDER = re.compile(r"[A-Za-z0-9]{3,11}")
_SUBACCOUNT_PATH = re.compile(r"/v3/subaccounts/([0-9]+)")
# Field order of the third-party form sample (reference §3b).
_FORM_ORDER = (
    "originalsenderid",
    "body",
    "message",
    "sms",
    "from",
    "to",
    "timestamp",
    "message_id",
    "original_message_id",
    "originalmessageid",
    "original_body",
    "originalmessage",
    "user_id",
    "subaccount_id",
    "custom_string",
    "customstring",
)

_Handler = Callable[[web.Request, "Account", "RecordedRequest"], Awaitable[web.Response]]


def _envelope(http_code: int, response_code: str, response_msg: str, data: Any = None) -> JsonDict:
    return {
        "http_code": http_code,
        "response_code": response_code,
        "response_msg": response_msg,
        "data": data,
    }


def _unauthorized() -> JsonDict:
    return _envelope(401, "UNAUTHORIZED", "Authorization failed.")


def _not_found() -> JsonDict:
    return _envelope(404, "NOT_FOUND", "Invalid endpoint. Please try again.")


def _too_many() -> JsonDict:
    # Live probes saw HTTP_TOO_MANY_REQUESTS, not the documented TOO_MANY_REQUESTS.
    return _envelope(429, "HTTP_TOO_MANY_REQUESTS", "Too many attempts.")


def _server_error() -> JsonDict:
    return _envelope(500, "INTERNAL_SERVER_ERROR", "Something is broken.")


def message_parts(body: str) -> int:
    """Billable SMS parts: 160/153 GSM-7 or 70/67 UCS-2 characters, line breaks count twice."""
    text = body.replace("\r\n", "\n")
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text):
        units = sum(2 if c in _GSM_EXTENDED or c == "\n" else 1 for c in text)
        single, multi = 160, 153
    else:
        units = sum(2 if ord(c) > 0xFFFF or c == "\n" else 1 for c in text)
        single, multi = 70, 67
    return 1 if units <= single else math.ceil(units / multi)


def _country_name(region: str) -> str:
    names = LOCALE_DATA.get(region, {})
    name = names.get("en", "")
    if name.startswith("*"):  # "*xx": the name is stored under language xx
        name = names.get(name[1:], "")
    return name or region


def _int_arg(raw: str | None, default: int) -> int:
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        return default


@dataclass
class Account:
    """An API credential pair; `user_id` groups subaccounts of one ClickSend user."""

    username: str
    api_key: str
    subaccount_id: int
    user_id: int
    email: str
    first_name: str = "Sim"
    last_name: str = "User"
    phone_number: str | None = None
    state: AccountState = "active"
    is_main: bool = False

    def subaccount_record(self) -> JsonDict:
        """The `GET /v3/subaccounts` record, live api_key included, like the real one."""
        return {
            "subaccount_id": self.subaccount_id,
            "api_username": self.username,
            "email": self.email,
            "phone_number": self.phone_number,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "api_key": self.api_key,
            "access_smpp": 0,
            "access_users": 1,
            "access_billing": 1,
            "access_reporting": 1,
            "access_contacts": 1,
            "access_settings": 1,
            "access_sms": 1,
            "access_email": 1,
            "access_voice": 1,
            "access_fax": 1,
            "access_post": 1,
            "access_reseller": 0,
            "access_global_sending": 1,
            "access_mms": 1,
            "hide_pricing": 0,
            "share_campaigns": 0,
            "notes": None,
            "is_main": int(self.is_main),
            "sign_up_type": None,
        }


@dataclass
class RecordedRequest:
    """One request to `/v3/*`. `status` is None when the connection was dropped."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None
    status: int | None = None
    fault: str | None = None
    messages: list[JsonDict] = field(default_factory=list)
    received_at: float = field(default_factory=time.time)

    @property
    def authorization(self) -> str | None:
        return self.headers.get("Authorization")

    @property
    def custom_strings(self) -> list[Any]:
        msgs = self.body.get("messages") if isinstance(self.body, dict) else None
        if not isinstance(msgs, list):
            return []
        return [m.get("custom_string") for m in msgs if isinstance(m, dict)]


@dataclass
class Fault:
    """One queued misbehaviour; `endpoint=None` applies it to any `/v3/*` path."""

    kind: FaultKind
    retry_after: int = 1
    delay: float = 0.0
    endpoint: str | None = SEND_PATH


@dataclass
class PushResult:
    """What the gateway answered to a pushed webhook, and exactly what was pushed."""

    status: int
    body: str
    url: str
    payload: JsonDict


class ClickSendSimulator(SimulatedService):
    """In-memory ClickSend: accounts, dedicated numbers, sent messages and injectable faults.

    Test numbers are accepted with `message_parts` 0 and price "0.0000" (never delivered, never
    charged) but still appear in `sent_messages`, since the client was told they were queued.
    """

    def __init__(
        self,
        accounts: Iterable[tuple[str, str]] = (),
        *,
        user_id: int = 463662,
        account_name: str = "pbxsms simulator",
        default_country: str = "US",
        currency: Mapping[str, str] | None = None,
        balance: str = "100.000000",
        price_per_part: str = "0.0792",
        shared_number: str = "+61481070000",
        throttle_seconds: float | None = None,
        enabled_countries: Iterable[str] | None = None,
        strict_numbers: bool = False,
        rate_limit: int = 6000,
        endpoint_rate_limits: Mapping[str, int] | None = None,
        enforce_rate_limits: bool = False,
        include_test_accounts: bool = True,
        push_timeout: float = 10.0,
    ) -> None:
        self.user_id = user_id
        self.account_name = account_name
        self.default_country = default_country.upper()
        self.currency: JsonDict = dict(currency or _USD)
        self.balance = balance
        self.price_per_part = Decimal(price_per_part)
        self.shared_number = shared_number
        # Off by default: "same body to same recipient shortly after" -> THROTTLED.
        self.throttle_seconds = throttle_seconds
        self.enabled_countries = (
            None if enabled_countries is None else {c.upper() for c in enabled_countries}
        )
        # is_possible_number by default, so made-up numbers such as +1555... are accepted.
        self.strict_numbers = strict_numbers
        self.rate_limit = rate_limit
        # Probes saw 20/minute on /v3/account and 6000 elsewhere.
        self.endpoint_rate_limits = dict(endpoint_rate_limits or {"/v3/account": 20})
        self.enforce_rate_limits = enforce_rate_limits
        super().__init__(push_timeout)

        self.accounts: dict[str, Account] = {}
        self.numbers: list[JsonDict] = []
        self.requests: list[RecordedRequest] = []
        self.sent_messages: list[JsonDict] = []
        self.forced_statuses: dict[str, str] = {}
        self.faults: list[Fault] = []

        self._next_subaccount_id = 526569
        self._created = int(time.time())
        self._throttle: dict[tuple[int, str, str], float] = {}
        self._buckets: dict[tuple[str, str], tuple[float, int]] = {}

        for username, api_key in accounts:
            self.add_account(username, api_key)
        if include_test_accounts:
            # Separate users, so they never show up in the main user's subaccount list.
            states: tuple[AccountState, ...] = ("nocredit", "notactive", "banned")
            for offset, state in enumerate(states, start=1):
                self.add_account(state, TEST_ACCOUNT_KEY, user_id=offset, state=state)

    # ---- configuration -------------------------------------------------------------------

    def add_account(
        self,
        username: str,
        api_key: str,
        subaccount_id: int | None = None,
        *,
        email: str | None = None,
        user_id: int | None = None,
        state: AccountState = "active",
        first_name: str = "Sim",
        last_name: str = "User",
        phone_number: str | None = None,
    ) -> Account:
        """Add (or replace) a credential; the first account of a user is its main account."""
        uid = self.user_id if user_id is None else user_id
        if subaccount_id is None:
            subaccount_id = self._next_subaccount_id
        self._next_subaccount_id = max(self._next_subaccount_id, subaccount_id) + 1
        old = self.accounts.get(username)
        is_main = (old.is_main if old else False) or not any(
            a.user_id == uid for a in self.accounts.values()
        )
        account = Account(
            username=username,
            api_key=api_key,
            subaccount_id=subaccount_id,
            user_id=uid,
            email=email or f"{username.lower()}@example.com",
            first_name=first_name,
            last_name=last_name,
            phone_number=phone_number,
            state=state,
            is_main=is_main,
        )
        self.accounts[username] = account
        return account

    def add_number(
        self,
        number: str,
        *,
        country: str | None = None,
        type: str = "sms",
        number_type: str = "longcode",
        price: str = "18.59",
        status: int = 0,
        notes: str | None = None,
    ) -> JsonDict:
        """Add a dedicated number, shaped like a `GET /v3/numbers` record."""
        parsed = phonenumbers.parse(number, None)
        region = country or phonenumbers.region_code_for_number(parsed) or "ZZ"
        label, description, name = _NUMBER_STATUS[status]
        record: JsonDict = {
            "dedicated_number": phonenumbers.format_number(
                parsed, phonenumbers.PhoneNumberFormat.E164
            ),
            "country": region,
            "price": price,
            "_country_name": _country_name(region),
            "notes": notes,
            "type": type,
            "number_type": number_type,
            "number_category": None,
            "number_guid": str(uuid.uuid4()).upper(),
            "form_submission_id": None,
            "status": {"value": status, "label": label, "description": description, "name": name},
        }
        self.numbers.append(record)
        return record

    def force_status(self, number: str, status: str | None) -> None:
        """Make every message to `number` get `status` (None removes the override)."""
        key = self._normalise(number, None) or number
        if status is None:
            self.forced_statuses.pop(key, None)
        else:
            self.forced_statuses[key] = status

    def fail_next(
        self,
        kind: FaultKind,
        count: int = 1,
        *,
        retry_after: int = 1,
        delay: float = 0.0,
        endpoint: str | None = SEND_PATH,
    ) -> None:
        """Queue `count` faults of `kind` for the next matching requests.

        `store_then_500` processes and records the send, then answers 500 (the ambiguous
        case); `drop` closes the connection before reading anything; `delay` waits `delay`
        seconds and then answers normally, so a client that timed out still gets it sent.
        """
        if kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {_FAULT_KINDS}")
        fault = Fault(kind=kind, retry_after=retry_after, delay=delay, endpoint=endpoint)
        self.faults.extend(Fault(**asdict(fault)) for _ in range(count))

    def reset(self) -> None:
        """Forget recorded traffic, queued faults and throttling state; keep configuration."""
        self.requests.clear()
        self.sent_messages.clear()
        self.faults.clear()
        self._throttle.clear()
        self._buckets.clear()

    @property
    def send_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == SEND_PATH and r.method == "POST"]

    # ---- lifecycle -----------------------------------------------------------------------

    def create_app(self) -> web.Application:
        return create_app(self)

    # ---- webhooks pushed to a gateway ----------------------------------------------------

    async def push_inbound(
        self,
        url: str,
        from_: str,
        to: str,
        body: str,
        *,
        webhook_type: WebhookType = "post",
        message_id: str | None = None,
        original_message_id: str | None = None,
        original_body: str | None = None,
        custom_string: str | None = None,
        subaccount_id: int | None = None,
        user_id: int | None = None,
        timestamp: int | None = None,
    ) -> PushResult:
        """Deliver an inbound SMS webhook as an inbound rule with action URL would.

        Like ClickSend, a reply is tied to the last message sent to `from_` (or to
        `original_message_id`): its id, body and custom_string are echoed unless given.
        """
        if webhook_type not in _WEBHOOK_TYPES:
            raise ValueError(f"webhook_type must be one of {_WEBHOOK_TYPES}")
        original = self._find_sent(original_message_id, from_, to)
        owner = self._owner_of(original)
        fields: JsonDict = {
            "originalsenderid": to,
            "body": body,
            "message": body,
            "sms": from_,
            "from": from_,
            "to": to,
            "timestamp": int(time.time()) if timestamp is None else timestamp,
            "message_id": message_id or str(uuid.uuid4()).upper(),
            "original_message_id": original_message_id
            or (original["message_id"] if original else ""),
            "original_body": (
                original_body
                if original_body is not None
                else (original.get("body", "") if original else "")
            ),
            "user_id": owner[0] if user_id is None else user_id,
            "subaccount_id": owner[1] if subaccount_id is None else subaccount_id,
            "custom_string": (
                custom_string
                if custom_string is not None
                else ((original.get("custom_string") or "") if original else "")
            ),
        }
        if webhook_type == "json":
            return await self._push("POST", url, fields, json_body=fields)
        # Form/GET carry the third-party-observed legacy aliases too, all values as strings.
        alias = {
            "originalmessageid": "original_message_id",
            "originalmessage": "original_body",
            "customstring": "custom_string",
        }
        pairs = [(k, str(fields[alias.get(k, k)])) for k in _FORM_ORDER]
        if webhook_type == "get":
            target = str(URL(url).update_query(pairs))
            return await self._push("GET", target, dict(pairs))
        return await self._push("POST", url, dict(pairs), form=pairs)

    async def push_receipt(
        self,
        url: str,
        message_id: str,
        status_code: int = 201,
        *,
        status_text: str | None = None,
        error_code: int | None = None,
        error_text: str | None = None,
        custom_string: str | None = None,
        subaccount_id: int | None = None,
        timestamp: int | None = None,
        timestamp_send: int | None = None,
        message_type: str = "sms",
        fmt: ReceiptFormat = "form",
    ) -> PushResult:
        """Deliver a delivery receipt (200 sent, 201 delivered, 300 retrying, 301 failed).

        The push's content type is undocumented: form-encoded by default, JSON on request.
        `status_code` is a string in both, as in ClickSend's own examples.
        """
        sent = self._find_sent(message_id, None, None)
        default_text, default_error, default_error_text = _RECEIPT_TEXT.get(
            status_code, (f"Status {status_code}", None, None)
        )
        now = int(time.time())
        fields: JsonDict = {
            "timestamp_send": (
                timestamp_send
                if timestamp_send is not None
                else (sent["date"] if sent and "date" in sent else now)
            ),
            "timestamp": now if timestamp is None else timestamp,
            "message_id": message_id,
            "status_code": str(status_code),
            "status_text": status_text or default_text,
            "error_code": default_error if error_code is None else error_code,
            "error_text": default_error_text if error_text is None else error_text,
            "custom_string": (
                custom_string
                if custom_string is not None
                else ((sent.get("custom_string") or None) if sent else None)
            ),
            "subaccount_id": (self._owner_of(sent)[1] if subaccount_id is None else subaccount_id),
            "message_type": message_type,
            "digits": None,
        }
        if fmt == "json":
            return await self._push("POST", url, fields, json_body=fields)
        pairs = [(k, "" if v is None else str(v)) for k, v in fields.items()]
        return await self._push("POST", url, dict(pairs), form=pairs)

    async def _push(
        self,
        method: str,
        url: str,
        payload: JsonDict,
        *,
        json_body: JsonDict | None = None,
        form: list[tuple[str, str]] | None = None,
    ) -> PushResult:
        data: str | None = None
        headers: dict[str, str] = {}
        if json_body is not None:
            data, headers["Content-Type"] = json.dumps(json_body), "application/json"
        elif form is not None:
            data = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        async with self.session.request(method, url, data=data, headers=headers) as resp:
            return PushResult(status=resp.status, body=await resp.text(), url=url, payload=payload)

    def _find_sent(
        self, message_id: str | None, recipient: str | None, sender: str | None
    ) -> JsonDict | None:
        for record in reversed(self.sent_messages):
            if message_id is not None:
                if record.get("message_id") == message_id:
                    return record
            elif (
                recipient is not None
                and record.get("to") == recipient
                and (sender is None or record.get("from") == sender)
            ):
                return record
        # A reply from a number we wrote to from another sender still belongs to that thread.
        if message_id is None and recipient is not None and sender is not None:
            return self._find_sent(None, recipient, None)
        return None

    def _owner_of(self, record: JsonDict | None) -> tuple[int, int]:
        """(user_id, subaccount_id) for a sent record, else the main account's."""
        if record is not None and "subaccount_id" in record:
            return int(record.get("user_id") or self.user_id), int(record["subaccount_id"])
        for account in self.accounts.values():
            if account.user_id == self.user_id:
                return account.user_id, account.subaccount_id
        return self.user_id, 0

    # ---- HTTP: dispatch ------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Single entry point, so a wrong method gets ClickSend's 404 rather than a 405."""
        if request.path.startswith("/_sim/"):
            return await self.control(request)
        return await self._api(request)

    def _api_handler(self, method: str, path: str) -> _Handler | None:
        routes: dict[tuple[str, str], _Handler] = {
            ("POST", SEND_PATH): self._send,
            ("GET", HISTORY_PATH): self._history,
            ("GET", "/v3/account"): self._account,
            ("GET", "/v3/subaccounts"): self._subaccounts,
            ("GET", "/v3/numbers"): self._numbers,
        }
        handler = routes.get((method, path.rstrip("/") or "/"))
        if handler is None and method == "GET" and _SUBACCOUNT_PATH.fullmatch(path):
            handler = self._subaccount
        return handler

    async def _api(self, request: web.Request) -> web.StreamResponse:
        rec = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
        )
        self.requests.append(rec)
        handler = self._api_handler(request.method, request.path)
        if handler is None:
            # Route matching comes before authentication, as in any Laravel app.
            return self._finish(rec, json_response(404, _not_found()))

        fault = self._take_fault(request.path)
        if fault is not None:
            rec.fault = fault.kind
            if fault.kind == "drop":
                if request.transport is not None:
                    request.transport.close()
                return web.Response(status=500)  # never reaches the client

        if request.can_read_body:
            raw = await request.text()
            try:
                rec.body = json.loads(raw)
            except ValueError:
                rec.body = raw

        if fault is not None:
            # The body is in before the delay, so a client that times out has still sent it.
            if fault.kind == "delay":
                await self.pause(fault.delay)
            elif fault.kind == "429":
                headers = {"Retry-After": str(fault.retry_after)}
                return self._finish(rec, json_response(429, _too_many(), headers))
            elif fault.kind == "500":
                return self._finish(rec, json_response(500, _server_error()))

        account = self._authenticate(request.headers.get("Authorization"))
        if account is None or account.state == "notactive":
            # Identical for missing, wrong and not-yet-activated credentials; no WWW-Authenticate.
            return self._finish(rec, json_response(401, _unauthorized()))
        if account.state == "banned":
            suspended = {
                "response_code": "FORBIDDEN",
                "response_msg": "Your account is suspended. Please contact support for more "
                "information.",
            }
            return self._finish(rec, json_response(403, suspended))

        limit, remaining, reset, exceeded = self._count_rate(account, request.path)
        if exceeded and self.enforce_rate_limits:
            headers = {"Retry-After": str(reset)}
            return self._finish(rec, json_response(429, _too_many(), headers))

        response = await handler(request, account, rec)
        response.headers["x-ratelimit-limit"] = str(limit)
        response.headers["x-ratelimit-remaining"] = str(remaining)
        response.headers["ratelimit-reset"] = str(reset)
        if fault is not None and fault.kind == "store_then_500":
            response = json_response(500, _server_error())
        return self._finish(rec, response)

    @staticmethod
    def _finish(rec: RecordedRequest, response: web.Response) -> web.Response:
        rec.status = response.status
        return response

    def _take_fault(self, path: str) -> Fault | None:
        for i, fault in enumerate(self.faults):
            if fault.endpoint is None or fault.endpoint == path:
                return self.faults.pop(i)
        return None

    def _authenticate(self, header: str | None) -> Account | None:
        if not header or not header.startswith("Basic "):
            return None
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        username, sep, api_key = decoded.partition(":")
        account = self.accounts.get(username)
        if not sep or account is None:
            return None
        if not hmac.compare_digest(account.api_key.encode(), api_key.encode()):
            return None
        return account

    def _count_rate(self, account: Account, path: str) -> tuple[int, int, int, bool]:
        """Fixed 60 s window per (account, endpoint): limit, remaining, reset seconds, over."""
        limit = self.endpoint_rate_limits.get(path, self.rate_limit)
        now = time.monotonic()
        key = (account.username, path)
        start, used = self._buckets.get(key, (now, 0))
        if now - start >= 60:
            start, used = now, 0
        used += 1
        self._buckets[key] = (start, used)
        reset = max(1, math.ceil(60 - (now - start)))
        return limit, max(limit - used, 0), reset, used > limit

    # ---- HTTP: /v3 endpoints -------------------------------------------------------------

    async def _send(
        self, request: web.Request, account: Account, rec: RecordedRequest
    ) -> web.Response:
        body = rec.body
        if not isinstance(body, dict):
            return json_response(400, _envelope(400, "BAD_REQUEST", "Invalid input.", None))
        messages = body.get("messages")
        # Validation wording is undocumented; the shape matches the SDK's Model400Error.
        if not isinstance(messages, list) or not messages:
            error = {"messages": "The messages field is required."}
            return json_response(400, _envelope(400, "BAD_REQUEST", "Invalid input.", error))
        if len(messages) > MAX_MESSAGES_PER_REQUEST:
            limit = MAX_MESSAGES_PER_REQUEST
            error = {"messages": f"The messages may not have more than {limit} items."}
            return json_response(400, _envelope(400, "BAD_REQUEST", "Invalid input.", error))

        now = int(time.time())
        results = [self._process_message(m, account, now) for m in messages]
        queued = [r for r in results if r["status"] == "SUCCESS"]
        total = sum((Decimal(r["message_price"]) for r in queued), Decimal(0))
        rec.messages = results
        self.sent_messages.extend(queued)
        data = {
            "total_price": float(total) if total else 0,
            "total_count": len(results),
            "queued_count": len(queued),
            "messages": results,
            "_currency": self.currency,
            "blocked_count": sum(r["status"] == "COUNTRY_NOT_ENABLED" for r in results),
        }
        return json_response(200, _envelope(200, "SUCCESS", "Messages queued for delivery.", data))

    def _process_message(self, msg: Any, account: Account, now: int) -> JsonDict:
        message_id = str(uuid.uuid4()).upper()  # assigned even to rejected messages
        if not isinstance(msg, dict):
            return self._rejected(message_id, {}, "MISSING_REQUIRED_FIELDS")
        to_raw, body = msg.get("to"), msg.get("body")
        country = msg.get("country") if isinstance(msg.get("country"), str) else None
        if to_raw is None and msg.get("list_id") is not None:
            return self._rejected(message_id, msg, "NOT_ENOUGH_PERMISSION_TO_LIST_ID")
        if to_raw is None or body is None:
            return self._rejected(message_id, msg, "MISSING_REQUIRED_FIELDS")
        found = self._parse(to_raw, country)
        to, parsed = found if found is not None else (None, None)
        forced = self.forced_statuses.get(to or str(to_raw))
        if forced is not None and forced != "SUCCESS":
            return self._rejected(message_id, msg, forced)
        if forced is None or to is None or not isinstance(body, str):
            status = self._validate(msg, to, account)
            if status != "SUCCESS":
                return self._rejected(message_id, msg, status)
        assert to is not None and parsed is not None and isinstance(body, str)  # by _validate
        if self.throttle_seconds is not None:
            self._throttle[(account.user_id, to, body)] = time.monotonic()

        region = phonenumbers.region_code_for_number(parsed) or (
            phonenumbers.region_code_for_country_code(parsed.country_code or 0)
        )
        sender, shared = self._sender_for(msg.get("from"))
        is_test = to in TEST_NUMBERS
        parts = 0 if is_test else message_parts(body)
        schedule = msg.get("schedule")
        return {
            "direction": "out",
            "date": now,
            "to": to,
            "body": body,
            "from": sender,
            "schedule": _int_arg(str(schedule), now) if schedule not in (None, "", 0, "0") else now,
            "message_id": message_id,
            "message_parts": parts,
            "message_price": f"{self.price_per_part * parts:.4f}",
            "from_email": msg.get("from_email") if isinstance(msg.get("from_email"), str) else None,
            "list_id": None,
            "custom_string": self._custom_string(msg),
            "contact_id": None,
            "user_id": account.user_id,
            "subaccount_id": account.subaccount_id,
            "is_shared_system_number": shared,
            "country": region,
            "carrier": pn_carrier.name_for_number(parsed, "en"),
            "status": "SUCCESS",
        }

    def _validate(self, msg: JsonDict, to: str | None, account: Account) -> str:
        body = msg.get("body")
        if account.state == "nocredit":
            return "INSUFFICIENT_CREDIT"
        if not isinstance(body, str) or not body.strip():
            return "EMPTY_MESSAGE"
        if to is None:
            return "INVALID_RECIPIENT"
        schedule = msg.get("schedule")
        if schedule not in (None, "") and not (
            (isinstance(schedule, int) and not isinstance(schedule, bool) and schedule >= 0)
            or (isinstance(schedule, str) and schedule.isdigit())
        ):
            return "INVALID_SCHEDULE"
        sender = msg.get("from")
        if sender not in (None, "") and not (
            isinstance(sender, str)
            and (
                _NUMERIC_SENDER.fullmatch(sender)
                or (_ALPHA_SENDER.fullmatch(sender) and not sender.isdigit())
            )
        ):
            return "INVALID_SENDER_ID"
        if self.enabled_countries is not None:
            parsed = phonenumbers.parse(to, None)
            if phonenumbers.region_code_for_number(parsed) not in self.enabled_countries:
                return "COUNTRY_NOT_ENABLED"
        if self.throttle_seconds is not None:
            last = self._throttle.get((account.user_id, to, body))
            if last is not None and time.monotonic() - last < self.throttle_seconds:
                return "THROTTLED"
        return "SUCCESS"

    def _sender_for(self, sender: Any) -> tuple[str, bool]:
        """(from, is_shared_system_number): no sender means a dedicated number, else the pool."""
        if isinstance(sender, str) and sender:
            return sender, False
        if self.numbers:
            return str(self.numbers[0]["dedicated_number"]), False
        return self.shared_number, True

    @staticmethod
    def _custom_string(msg: JsonDict) -> str:
        value = msg.get("custom_string")
        return "" if value is None else str(value)

    def _rejected(self, message_id: str, msg: JsonDict, status: str) -> JsonDict:
        # Live probes: rejected messages carry only these keys, and schedule is "".
        def text(key: str) -> str:
            value = msg.get(key)
            return "" if value is None else str(value)

        return {
            "to": text("to"),
            "body": text("body"),
            "from": text("from"),
            "schedule": "",
            "message_id": message_id,
            "custom_string": self._custom_string(msg),
            "is_shared_system_number": False,
            "status": status,
        }

    def _normalise(self, raw: Any, country: str | None) -> str | None:
        """E.164 form of a recipient, or None when it is not a usable phone number."""
        found = self._parse(raw, country)
        return found[0] if found is not None else None

    def _parse(self, raw: Any, country: str | None) -> tuple[str, PhoneNumber] | None:
        """(E.164, parsed) of a recipient, or None when it is not a usable phone number;
        parsed once per message (parsing was most of a 1000-message call's time)."""
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            return None
        try:
            parsed = phonenumbers.parse(str(raw), (country or self.default_country).upper())
        except phonenumbers.NumberParseException:
            return None
        check = (
            phonenumbers.is_valid_number if self.strict_numbers else phonenumbers.is_possible_number
        )
        if not check(parsed):
            return None
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), parsed

    async def _history(
        self, request: web.Request, account: Account, rec: RecordedRequest
    ) -> web.Response:
        """`GET /v3/sms/history`: the messages this account stored, newest first, filtered by
        `date_from`/`date_to` (unix seconds, inclusive) and paginated. A subaccount sees its
        own; the main account sees its user's. The order and `status` "Sent" for a message
        with no receipt yet are undocumented choices."""
        date_from = _int_arg(request.query.get("date_from"), 0)
        date_to = _int_arg(request.query.get("date_to"), 2**63)
        records = [
            {**record, "status": "Sent"}
            for record in reversed(self.sent_messages)
            if record.get("user_id") == account.user_id
            and (account.is_main or record.get("subaccount_id") == account.subaccount_id)
            and date_from <= int(record.get("date") or 0) <= date_to
        ]
        data = _paginate(request, records)
        return json_response(200, _envelope(200, "SUCCESS", "Here are your data.", data))

    async def _account(
        self, request: web.Request, account: Account, rec: RecordedRequest
    ) -> web.Response:
        main = next(
            (a for a in self.accounts.values() if a.user_id == account.user_id and a.is_main),
            account,
        )
        data: JsonDict = {
            "user_id": account.user_id,
            "username": main.username,
            "user_email": main.email,
            "active": 1,
            "banned": 0,
            "date_sign_up": self._created,
            "balance": "0.000000" if account.state == "nocredit" else self.balance,
            "user_phone": main.phone_number,
            "reply_to": "originalemail",
            "delivery_to": None,
            "user_first_name": main.first_name,
            "user_last_name": main.last_name,
            "account": 0,
            "account_name": self.account_name,
            "account_billing_email": main.email,
            "account_billing_mobile": main.phone_number,
            "priority": 0,
            "country": self.default_country,
            "country_ip": self.default_country,
            "default_country_sms": self.default_country,
            "auto_recharge": 0,
            "auto_recharge_amount": "20.00",
            "low_credit_amount": "0.00",
            "setting_unicode_sms": 0,
            "setting_email_sms_subject": 0,
            "setting_fix_sender_id": 0,
            "setting_sms_message_char_limit": 6,
            "old_dashboard": 0,
            "balance_commission": "0.000000",
            "timezone": "Australia/Melbourne",
            "price_rate": 0,
            "private_uploads": 0,
            "fax_quality": 0,
            "setting_sms_hide_your_number": 0,
            "setting_sms_hide_business_name": 0,
            "pricing_variant": 0,
            "on_trial": 0,
            "trial_expiry": None,
            "_currency": self.currency,
            "_subaccount": account.subaccount_record(),
            "_referrer_chosen": {"id": 8, "name": "Other"},
        }
        return json_response(200, _envelope(200, "SUCCESS", "Here's your account", data))

    async def _subaccounts(
        self, request: web.Request, account: Account, rec: RecordedRequest
    ) -> web.Response:
        records = [
            a.subaccount_record() for a in self.accounts.values() if a.user_id == account.user_id
        ]
        data = _paginate(request, records)
        return json_response(200, _envelope(200, "SUCCESS", "Here are your data.", data))

    async def _subaccount(
        self, request: web.Request, account: Account, rec: RecordedRequest
    ) -> web.Response:
        wanted = int(request.path.rsplit("/", 1)[1])
        for a in self.accounts.values():
            if a.user_id == account.user_id and a.subaccount_id == wanted:
                body = _envelope(200, "SUCCESS", "Here are your data.", a.subaccount_record())
                return json_response(200, body)
        return json_response(404, _envelope(404, "NOT_FOUND", "Subaccount not found."))

    async def _numbers(
        self, request: web.Request, account: Account, rec: RecordedRequest
    ) -> web.Response:
        data = _paginate(request, self.numbers)
        data["_currency"] = self.currency
        return json_response(
            200, _envelope(200, "SUCCESS", "Here are you dedicated numbers.", data)
        )

    # ---- HTTP: /_sim control API ---------------------------------------------------------

    def control_routes(self) -> dict[tuple[str, str], ControlHandler]:
        return {
            ("GET", "/_sim/messages"): self._ctl_messages,
            ("GET", "/_sim/requests"): self._ctl_requests,
            ("POST", "/_sim/reset"): self._ctl_reset,
            ("POST", "/_sim/fail"): self._ctl_fail,
            ("POST", "/_sim/force_status"): self._ctl_force_status,
            ("POST", "/_sim/accounts"): self._ctl_accounts,
            ("POST", "/_sim/numbers"): self._ctl_numbers,
            ("POST", "/_sim/config"): self._ctl_config,
            ("POST", "/_sim/inbound"): self._ctl_inbound,
            ("POST", "/_sim/receipt"): self._ctl_receipt,
        }

    async def _ctl_messages(self, request: web.Request) -> web.StreamResponse:
        return json_response(
            200,
            {
                "requests": [asdict(r) for r in self.send_requests],
                "messages": self.sent_messages,
            },
        )

    async def _ctl_requests(self, request: web.Request) -> web.StreamResponse:
        return json_response(200, {"requests": [asdict(r) for r in self.requests]})

    async def _ctl_reset(self, request: web.Request) -> web.StreamResponse:
        self.reset()
        return json_response(200, {"ok": True})

    async def _ctl_fail(self, request: web.Request) -> web.StreamResponse:
        args = await control_json(request)
        kind = args.get("kind")
        if kind not in _FAULT_KINDS:
            return _bad_control(f"kind must be one of {list(_FAULT_KINDS)}")
        try:
            self.fail_next(
                kind,
                int(args.get("count", 1)),
                retry_after=int(args.get("retry_after", 1)),
                delay=float(args.get("delay", 0.0)),
                endpoint=args.get("endpoint", SEND_PATH),
            )
        except (TypeError, ValueError) as exc:
            return _bad_control(str(exc))
        return json_response(200, {"ok": True, "queued": len(self.faults)})

    async def _ctl_force_status(self, request: web.Request) -> web.StreamResponse:
        args = await control_json(request)
        number, status = args.get("number"), args.get("status")
        if not isinstance(number, str) or not (status is None or isinstance(status, str)):
            return _bad_control("expected {'number': str, 'status': str | null}")
        self.force_status(number, status)
        return json_response(200, {"ok": True})

    async def _ctl_accounts(self, request: web.Request) -> web.StreamResponse:
        args = await control_json(request)
        username, api_key = args.get("username"), args.get("api_key")
        if not isinstance(username, str) or not isinstance(api_key, str):
            return _bad_control("expected {'username': str, 'api_key': str}")
        sub_id = args.get("subaccount_id")
        account = self.add_account(
            username, api_key, int(sub_id) if sub_id is not None else None, email=args.get("email")
        )
        return json_response(200, {"ok": True, "subaccount_id": account.subaccount_id})

    async def _ctl_numbers(self, request: web.Request) -> web.StreamResponse:
        args = await control_json(request)
        number = args.get("number")
        if not isinstance(number, str):
            return _bad_control("expected {'number': str}")
        try:
            record = self.add_number(number, status=int(args.get("status", 0)))
        except (phonenumbers.NumberParseException, KeyError, ValueError) as exc:
            return _bad_control(f"bad number: {exc}")
        return json_response(200, record)

    async def _ctl_config(self, request: web.Request) -> web.StreamResponse:
        args = await control_json(request)
        if "throttle_seconds" in args:
            value = args["throttle_seconds"]
            self.throttle_seconds = None if value is None else float(value)
        if "enabled_countries" in args:
            value = args["enabled_countries"]
            self.enabled_countries = None if value is None else {str(c).upper() for c in value}
        if "enforce_rate_limits" in args:
            self.enforce_rate_limits = bool(args["enforce_rate_limits"])
        return json_response(200, {"ok": True})

    async def _ctl_inbound(self, request: web.Request) -> web.StreamResponse:
        args = await control_json(request)
        url, from_, to, body = (args.get(k) for k in ("url", "from", "to", "body"))
        if not all(isinstance(v, str) for v in (url, from_, to, body)):
            return _bad_control("expected url, from, to and body strings")
        webhook_type = args.get("webhook_type", "post")
        if webhook_type not in _WEBHOOK_TYPES:
            return _bad_control(f"webhook_type must be one of {list(_WEBHOOK_TYPES)}")
        return await relay(
            self.push_inbound(
                str(url),
                str(from_),
                str(to),
                str(body),
                webhook_type=webhook_type,
                message_id=args.get("message_id"),
                original_message_id=args.get("original_message_id"),
                original_body=args.get("original_body"),
                custom_string=args.get("custom_string"),
                subaccount_id=args.get("subaccount_id"),
                user_id=args.get("user_id"),
                timestamp=args.get("timestamp"),
            )
        )

    async def _ctl_receipt(self, request: web.Request) -> web.StreamResponse:
        args = await control_json(request)
        url, message_id = args.get("url"), args.get("message_id")
        if not isinstance(url, str) or not isinstance(message_id, str):
            return _bad_control("expected url and message_id strings")
        fmt = args.get("format", "form")
        if fmt not in ("form", "json"):
            return _bad_control("format must be 'form' or 'json'")
        return await relay(
            self.push_receipt(
                url,
                message_id,
                int(args.get("status_code", 201)),
                status_text=args.get("status_text"),
                error_code=args.get("error_code"),
                error_text=args.get("error_text"),
                custom_string=args.get("custom_string"),
                subaccount_id=args.get("subaccount_id"),
                timestamp=args.get("timestamp"),
                timestamp_send=args.get("timestamp_send"),
                message_type=str(args.get("message_type", "sms")),
                fmt=fmt,
            )
        )


def _paginate(request: web.Request, items: list[JsonDict]) -> JsonDict:
    """Laravel-style paginator; limit is clamped to 15..100 as the docs state."""
    page = max(_int_arg(request.query.get("page"), 1), 1)
    limit = min(max(_int_arg(request.query.get("limit"), 15), 15), 100)
    total = len(items)
    last_page = math.ceil(total / limit)  # 0 for an empty list, as probes saw
    start = (page - 1) * limit
    chunk = items[start : start + limit]

    def page_url(number: int) -> str:
        # Other filters (e.g. the history's dates) stay in the links, as Laravel's appends().
        query = {**request.query, "page": str(number)}
        if "limit" in request.query:
            query["limit"] = str(limit)
        return str(request.url.with_query(query))

    return {
        "total": total,
        "per_page": limit,
        "current_page": page,
        "last_page": last_page,
        "next_page_url": page_url(page + 1) if page < last_page else None,
        "prev_page_url": page_url(page - 1) if page > 1 else None,
        "from": start + 1 if chunk else None,
        "to": start + len(chunk) if chunk else None,
        "data": chunk,
    }


def _bad_control(message: str) -> web.Response:
    return json_response(400, {"error": message})


def create_app(sim: ClickSendSimulator) -> web.Application:
    # 1000 messages with long bodies exceed aiohttp's 1 MiB default.
    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", sim.handle)
    return app


async def serve_forever(
    host: str,
    port: int,
    username: str,
    api_key: str,
    *,
    subaccount_id: int | None = None,
    numbers: Iterable[str] = (),
) -> None:
    """Run a simulator with one account until cancelled (for `pbxsms clicksend simulator`)."""
    sim = ClickSendSimulator()
    sim.add_account(username, api_key, subaccount_id)
    for number in numbers:
        sim.add_number(number)
    url = await sim.start(host, port)
    print(f"ClickSend simulator on {url} (API user {username!r}); control API at {url}/_sim/")
    print(f"Point a gateway at it with CLICKSEND_BASE_URL={url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()
