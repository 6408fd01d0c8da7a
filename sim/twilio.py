"""A local stand-in for Twilio's Programmable Messaging API (2010-04-01), for tests, demos
and benchmarks.

It speaks Twilio's documented shapes: form-encoded requests with HTTP Basic auth, the
message resource, the list page, the account resource, and the error body
`{code, message, more_info, status}` (401 / 20003, 400 / 21xxx, 404 / 20404,
429 / 20429). The test-credentials magic numbers give their documented errors (From
+15005550001 21212, +15005550007 21606, +15005550008 21611; To +15005550001 21211,
+15005550002 21612, +15005550003 21408, +15005550004 21610, +15005550009 21614).

It pushes what Twilio pushes, signed as Twilio signs (`X-Twilio-Signature`: base64
HMAC-SHA1 with the auth token over the URL and the sorted form parameters): inbound
messages to a webhook URL, and status callbacks to the `StatusCallback` of a message.
Besides `/2010-04-01/*` an unauthenticated control API under `/_sim/` injects faults,
shows what was sent and pushes webhooks.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import time
import uuid
from dataclasses import asdict, dataclass, field
from email.utils import formatdate
from typing import Literal, get_args
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from pbxsms.sim.server import (
    ControlHandler,
    JsonDict,
    SimulatedService,
    control_json,
    json_response,
    relay,
)

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "FaultKind",
    "PushResult",
    "RecordedRequest",
    "TwilioSimulator",
    "serve_forever",
    "sign",
]

API = "/2010-04-01"
DEFAULT_ACCOUNT_SID = "AC" + "0" * 31 + "1"
MAX_BODY = 1600

# Test credentials' magic numbers (twilio.com/docs/iam/test-credentials).
MAGIC_FROM = {"+15005550001": 21212, "+15005550007": 21606, "+15005550008": 21611}
MAGIC_TO = {"+15005550001": 21211, "+15005550002": 21612, "+15005550003": 21408,
            "+15005550004": 21610, "+15005550009": 21614}
MAGIC_VALID_FROM = "+15005550006"

ERRORS: dict[int, tuple[int, str]] = {
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource {path} was not found"),
    20429: (429, "Too Many Requests"),
    21211: (400, "Invalid 'To' Phone Number: {to}"),
    21212: (400, "Invalid From Number (caller ID): {from_}"),
    21408: (400, "Permission to send an SMS has not been enabled for the region indicated "
                 "by the 'To' number: {to}"),
    21602: (400, "Message body is required."),
    21604: (400, "A 'To' phone number is required."),
    21603: (400, "A 'From' phone number is required."),
    21606: (400, "The From phone number {from_} is not a valid, SMS-capable inbound phone "
                 "number or short code for your account."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21611: (400, "This 'From' number has exceeded the maximum number of queued messages"),
    21612: (400, "The 'To' phone number: {to}, is not currently reachable using the 'From' "
                 "phone number: {from_} via SMS."),
    21614: (400, "'To' number {to} is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
}

FaultKind = Literal["429", "500", "503", "store_then_500", "drop", "delay"]
_FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
# A message's statuses in order; `undelivered` and `failed` end it too.
FINAL = frozenset({"delivered", "undelivered", "failed", "canceled", "read"})

_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)


def sign(token: str, url: str, params: list[tuple[str, str]] | None = None) -> str:
    """Twilio's `X-Twilio-Signature` of a request to `url` with form `params`."""
    values: dict[str, set[str]] = {}
    for name, value in params or []:
        values.setdefault(name, set()).add(value)
    data = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def segments(body: str) -> int:
    """SMS segments: 160/153 GSM-7 characters, else 70/67 UCS-2 (extension characters
    counted once: close enough for a simulator)."""
    single, multi = (160, 153) if all(c in _GSM7 for c in body) else (70, 67)
    return 1 if len(body) <= single else -(-len(body) // multi)


def new_sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def _rfc2822(at: float) -> str:
    return formatdate(at, usegmt=False).replace("-0000", "+0000")


@dataclass
class RecordedRequest:
    """One API call as the simulator saw it."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, list[str]]
    authorization: str | None
    at: float
    status: int | None = None
    fault: str | None = None


@dataclass
class Fault:
    kind: str
    retry_after: int = 1
    delay: float = 0.0


@dataclass
class PushResult:
    """What the gateway answered to a pushed webhook, and exactly what was pushed."""

    status: int
    body: str
    url: str
    params: list[tuple[str, str]]
    data: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class TwilioSimulator(SimulatedService):
    """In-memory Twilio account: messages created and received, injectable faults."""

    def __init__(self, auth_token: str, account_sid: str = DEFAULT_ACCOUNT_SID,
                 *, numbers: list[str] | None = None, friendly_name: str = "pbxsms simulator",
                 account_type: str = "Full", account_status: str = "active",
                 push_timeout: float = 15.0) -> None:
        super().__init__(push_timeout)
        self.account_sid = account_sid
        self.auth_token = auth_token
        # The account's own numbers (IncomingPhoneNumbers): From must be one of them
        # (none listed: any From).
        self.numbers: dict[str, JsonDict] = {}
        for number in numbers or []:
            self.add_number(number)
        self.friendly_name = friendly_name
        self.account_type = account_type
        self.account_status = account_status
        self.messages: list[JsonDict] = []
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.status_callbacks: dict[str, str] = {}
        # Answers to our pushes, newest last.
        self.pushes: list[PushResult] = []
        # Public base URL → where it really is (a TLS proxy in front of a gateway).
        self.proxies: dict[str, str] = {}
        self._created = time.time()

    # ---- configuration and inspection ------------------------------------------------

    def fail_next(self, kind: FaultKind, count: int = 1, *, retry_after: int = 1,
                  delay: float = 0.0) -> None:
        """Queue `count` faults for the next message creations: `429` (20429 with
        Retry-After), `500`, `503`, `store_then_500` (created, then a 500: the ambiguous
        case), `drop` (connection closed before an answer), `delay` (answers late)."""
        if kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {_FAULT_KINDS}")
        self.faults.extend(Fault(kind, retry_after, delay) for _ in range(count))

    def add_number(self, number: str, sms_url: str = "", sms_method: str = "POST"
                   ) -> JsonDict:
        """An IncomingPhoneNumber of the account, with its "A MESSAGE COMES IN" webhook."""
        sid = new_sid("PN")
        uri = f"{API}/Accounts/{self.account_sid}/IncomingPhoneNumbers/{sid}.json"
        record: JsonDict = {
            "account_sid": self.account_sid, "api_version": "2010-04-01",
            "capabilities": {"fax": False, "mms": True, "sms": True, "voice": True},
            "date_created": _rfc2822(time.time()), "friendly_name": number,
            "phone_number": number, "sid": sid, "sms_application_sid": "",
            "sms_fallback_method": "POST", "sms_fallback_url": "", "sms_method": sms_method,
            "sms_url": sms_url, "status": "in-use", "uri": uri,
        }
        self.numbers[number] = record
        return record

    def behind_proxy(self, public_url: str, local_url: str) -> None:
        """Deliver what is addressed to `public_url` to `local_url`, still signed for the
        public URL, as Twilio's request reaches a gateway through a TLS proxy."""
        self.proxies[public_url.rstrip("/")] = local_url.rstrip("/")

    def reset(self) -> None:
        self.messages.clear()
        self.requests.clear()
        self.faults.clear()
        self.pushes.clear()

    @property
    def sent(self) -> list[JsonDict]:
        """Messages created through the API, oldest first."""
        return [m for m in self.messages if m["direction"] == "outbound-api"]

    @property
    def create_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST"
                and r.path.endswith("/Messages.json")]

    def message(self, sid: str) -> JsonDict | None:
        return next((m for m in self.messages if m["sid"] == sid), None)

    # ---- lifecycle -------------------------------------------------------------------

    def create_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    # ---- webhooks pushed to a gateway ------------------------------------------------

    async def push_inbound(self, url: str, from_: str, to: str, body: str, *,
                           sid: str | None = None, sign_url: str | None = None,
                           token: str | None = None) -> PushResult:
        """Post an inbound message to `url` as Twilio's "A MESSAGE COMES IN" webhook does.

        `sign_url` signs for another URL than the one posted to (Twilio signs the URL it
        was configured with: behind a proxy, the public one); `token` signs with another
        auth token.
        """
        sid = sid or new_sid("SM")
        now = time.time()
        self.messages.append(self._resource(sid, from_, to, body, "received", now,
                                            direction="inbound"))
        params = [
            ("ToCountry", "US"), ("ToState", ""), ("SmsMessageSid", sid), ("NumMedia", "0"),
            ("ToCity", ""), ("FromZip", ""), ("SmsSid", sid), ("FromState", ""),
            ("SmsStatus", "received"), ("FromCity", ""), ("Body", body),
            ("FromCountry", "US"), ("To", to), ("ToZip", ""),
            ("NumSegments", str(segments(body))), ("MessageSid", sid),
            ("AccountSid", self.account_sid), ("From", from_), ("ApiVersion", "2010-04-01"),
        ]
        return await self.post_signed(url, params, sign_url=sign_url, token=token)

    async def push_status(self, sid: str, status: str, *, error_code: int | None = None,
                          url: str | None = None, sign_url: str | None = None,
                          token: str | None = None) -> PushResult:
        """Move a created message to `status` and post its status callback (to the
        message's `StatusCallback` unless `url` is given)."""
        message = self.message(sid)
        if message is None:
            raise KeyError(f"no message {sid}")
        target = url or self.status_callbacks.get(sid)
        if target is None:
            raise ValueError(f"message {sid} has no StatusCallback")
        message["status"] = status
        message["date_updated"] = _rfc2822(time.time())
        if status in ("sent", "delivered") and message["date_sent"] is None:
            message["date_sent"] = message["date_updated"]
        if error_code is not None:
            message["error_code"] = error_code
            message["error_message"] = ERRORS.get(error_code, (0, ""))[1] or None
        params = [("SmsSid", sid), ("SmsStatus", status), ("MessageStatus", status),
                  ("To", message["to"]), ("MessageSid", sid),
                  ("AccountSid", self.account_sid), ("From", message["from"]),
                  ("ApiVersion", "2010-04-01")]
        if error_code is not None:
            params.append(("ErrorCode", str(error_code)))
        return await self.post_signed(target, params, sign_url=sign_url, token=token)

    async def post_signed(self, url: str, params: list[tuple[str, str]], *,
                          sign_url: str | None = None, token: str | None = None,
                          data: bytes | None = None,
                          headers: dict[str, str] | None = None) -> PushResult:
        """Post a form signed as Twilio signs it. `data`, when given, is sent instead of
        the encoded `params` (a tampered body), with the signature of `params`."""
        signature = sign(token or self.auth_token, sign_url or url, params)
        sent = {"Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1",
                "I-Twilio-Idempotency-Token": str(uuid.uuid4()), **(headers or {})}
        body = data if data is not None else urlencode(params).encode()
        return await self.post_raw(url, body, sent, params)

    async def post_raw(self, url: str, body: bytes, headers: dict[str, str],
                       params: list[tuple[str, str]] | None = None) -> PushResult:
        """Post exactly these bytes and headers (a replay of an earlier push)."""
        async with self.session.post(self._through_proxy(url), data=body,
                                     headers=headers) as response:
            result = PushResult(response.status, await response.text(), url,
                                list(params or parse_qsl(body.decode(), keep_blank_values=True)),
                                body, dict(headers))
        self.pushes.append(result)
        return result

    async def replay(self, push: PushResult) -> PushResult:
        """Post an earlier push again, byte for byte, signature included."""
        return await self.post_raw(push.url, push.data, push.headers, push.params)

    def _through_proxy(self, url: str) -> str:
        for public, local in self.proxies.items():
            if url == public or url.startswith(public + "/") or url.startswith(public + "?"):
                return local + url[len(public):]
        return url

    # ---- HTTP: the API ---------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/_sim/"):
            return await self.control(request)
        form: dict[str, list[str]] = {}
        if request.method == "POST":
            for name, value in parse_qsl(await request.text(), keep_blank_values=True):
                form.setdefault(name, []).append(value)
        rec = RecordedRequest(request.method, request.path, dict(request.query), form,
                              request.headers.get("Authorization"), time.time())
        self.requests.append(rec)
        base = f"{API}/Accounts/{self.account_sid}"
        if not self._authenticated(rec.authorization):
            return self._finish(rec, self._error(20003))
        if request.path == f"{base}.json" and request.method == "GET":
            return self._finish(rec, json_response(200, self._account_resource()))
        if request.path == f"{base}/Messages.json" and request.method == "POST":
            return self._finish(rec, await self._create(request, rec))
        if request.path == f"{base}/Messages.json" and request.method == "GET":
            return self._finish(rec, json_response(200, self._list(request)))
        if request.path == f"{base}/IncomingPhoneNumbers.json" and request.method == "GET":
            wanted = request.query.get("PhoneNumber")
            found = [n for number, n in self.numbers.items() if not wanted or number == wanted]
            return self._finish(rec, json_response(200, self._page(
                "incoming_phone_numbers", f"{base}/IncomingPhoneNumbers.json", found, 50)))
        prefix = f"{base}/Messages/"
        if request.path.startswith(prefix) and request.method == "GET":
            message = self.message(request.path[len(prefix):].removesuffix(".json"))
            if message is not None:
                return self._finish(rec, json_response(200, message))
        return self._finish(rec, self._error(20404, path=request.path))

    def _authenticated(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user.encode(), self.account_sid.encode()) and \
            hmac.compare_digest(password.encode(), self.auth_token.encode())

    async def _create(self, request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        fault = self.faults.pop(0) if self.faults else None
        if fault is not None:
            rec.fault = fault.kind
            if fault.kind == "drop":
                if request.transport is not None:
                    request.transport.close()
                return web.Response(status=500)  # never reaches the client
            if fault.kind == "429":
                return self._error(20429, headers={"Retry-After": str(fault.retry_after)})
            if fault.kind == "500":
                return json_response(500, {"code": 20500, "message": "Internal Server Error",
                                           "more_info": _more_info(20500), "status": 500})
            if fault.kind == "503":
                return json_response(503, {"code": 20503, "message": "Service Unavailable",
                                           "more_info": _more_info(20503), "status": 503})
            if fault.kind == "delay":
                await self.pause(fault.delay)
        form = {name: values[0] for name, values in rec.form.items()}
        to, from_, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        if not to:
            return self._error(21604)
        if not from_ and not form.get("MessagingServiceSid"):
            return self._error(21603)
        if not body and not form.get("MediaUrl"):
            return self._error(21602)
        if len(body) > MAX_BODY:
            return self._error(21617)
        if from_ in MAGIC_FROM:
            return self._error(MAGIC_FROM[from_], to=to, from_=from_)
        if to in MAGIC_TO:
            return self._error(MAGIC_TO[to], to=to, from_=from_)
        if not _e164(to):
            return self._error(21211, to=to, from_=from_)
        if self.numbers and from_ not in self.numbers and from_ != MAGIC_VALID_FROM:
            return self._error(21606, to=to, from_=from_)
        sid = new_sid("SM")
        message = self._resource(sid, from_, to, body, "queued", time.time())
        self.messages.append(message)
        if form.get("StatusCallback"):
            self.status_callbacks[sid] = form["StatusCallback"]
        if fault is not None and fault.kind == "store_then_500":
            return json_response(500, {"code": 20500, "message": "Internal Server Error",
                                       "more_info": _more_info(20500), "status": 500})
        return json_response(201, message)

    def _list(self, request: web.Request) -> JsonDict:
        """One page of messages, newest first, filtered by `To` and `From`."""
        query = request.query
        size = min(max(int(query.get("PageSize", "50") or 50), 1), 1000)
        chosen = [m for m in reversed(self.messages)
                  if (not query.get("To") or m["to"] == query["To"])
                  and (not query.get("From") or m["from"] == query["From"])][:size]
        return self._page("messages", f"{API}/Accounts/{self.account_sid}/Messages.json",
                          chosen, size)

    @staticmethod
    def _page(key: str, uri: str, items: list[JsonDict], size: int) -> JsonDict:
        """Twilio's list page (the first; the simulator never needs a second)."""
        return {key: items, "end": max(len(items) - 1, 0),
                "first_page_uri": f"{uri}?PageSize={size}&Page=0", "next_page_uri": None,
                "page": 0, "page_size": size, "previous_page_uri": None, "start": 0,
                "uri": f"{uri}?PageSize={size}&Page=0"}

    def _resource(self, sid: str, from_: str, to: str, body: str, status: str, at: float,
                  direction: str = "outbound-api") -> JsonDict:
        """A message resource, every documented field present."""
        uri = f"{API}/Accounts/{self.account_sid}/Messages/{sid}"
        return {
            "account_sid": self.account_sid, "api_version": "2010-04-01", "body": body,
            "date_created": _rfc2822(at), "date_sent": None if status == "queued" else
            _rfc2822(at), "date_updated": _rfc2822(at), "direction": direction,
            "error_code": None, "error_message": None, "from": from_,
            "messaging_service_sid": None, "num_media": "0",
            "num_segments": str(segments(body)), "price": None, "price_unit": "USD",
            "sid": sid, "status": status, "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": to, "uri": f"{uri}.json",
        }

    def _account_resource(self) -> JsonDict:
        uri = f"{API}/Accounts/{self.account_sid}"
        return {
            "auth_token": self.auth_token, "date_created": _rfc2822(self._created),
            "date_updated": _rfc2822(self._created), "friendly_name": self.friendly_name,
            "owner_account_sid": self.account_sid, "sid": self.account_sid,
            "status": self.account_status,
            "subresource_uris": {"messages": f"{uri}/Messages.json"},
            "type": self.account_type, "uri": f"{uri}.json",
        }

    @staticmethod
    def _error(code: int, headers: dict[str, str] | None = None, **values: str) -> web.Response:
        status, template = ERRORS[code]
        message = template.format(**{"to": "", "from_": "", "path": "", **values})
        return json_response(status, {"code": code, "message": message,
                                      "more_info": _more_info(code), "status": status},
                             headers)

    @staticmethod
    def _finish(rec: RecordedRequest, response: web.StreamResponse) -> web.StreamResponse:
        rec.status = response.status
        return response

    # ---- HTTP: /_sim control API -----------------------------------------------------

    def control_routes(self) -> dict[tuple[str, str], ControlHandler]:
        return {
            ("GET", "/_sim/messages"): self._ctl_messages,
            ("GET", "/_sim/requests"): self._ctl_requests,
            ("POST", "/_sim/reset"): self._ctl_reset,
            ("POST", "/_sim/fail"): self._ctl_fail,
            ("POST", "/_sim/inbound"): self._ctl_inbound,
            ("POST", "/_sim/status"): self._ctl_status,
        }

    async def _ctl_messages(self, request: web.Request) -> web.StreamResponse:
        """Every message, sent and received, oldest first."""
        return json_response(200, {"messages": self.messages})

    async def _ctl_requests(self, request: web.Request) -> web.StreamResponse:
        """Every API call (authorization included: a simulator's own token)."""
        return json_response(200, {"requests": [asdict(r) for r in self.requests]})

    async def _ctl_reset(self, request: web.Request) -> web.StreamResponse:
        """Forget messages, calls, faults and pushes."""
        self.reset()
        return json_response(200, {"ok": True})

    async def _ctl_fail(self, request: web.Request) -> web.StreamResponse:
        """Queue faults for the next message creations: {kind, count, retry_after, delay}."""
        args = await control_json(request)
        kind = args.get("kind")
        if kind not in _FAULT_KINDS:
            return json_response(400, {"error": f"kind must be one of {list(_FAULT_KINDS)}"})
        try:
            self.fail_next(kind, int(args.get("count", 1)),
                           retry_after=int(args.get("retry_after", 1)),
                           delay=float(args.get("delay", 0.0)))
        except (TypeError, ValueError) as error:
            return json_response(400, {"error": str(error)})
        return json_response(200, {"ok": True, "queued": len(self.faults)})

    async def _ctl_inbound(self, request: web.Request) -> web.StreamResponse:
        """Push an inbound message: {url, from, to, body, sid?}."""
        args = await control_json(request)
        url, from_, to, body = (args.get(k) for k in ("url", "from", "to", "body"))
        if not all(isinstance(v, str) for v in (url, from_, to, body)):
            return json_response(400, {"error": "expected url, from, to and body strings"})
        return await relay(self.push_inbound(str(url), str(from_), str(to), str(body),
                                             sid=args.get("sid")))

    async def _ctl_status(self, request: web.Request) -> web.StreamResponse:
        """Push a status callback of a sent message: {sid, status, error_code?}."""
        args = await control_json(request)
        sid, status = args.get("sid"), args.get("status")
        if not isinstance(sid, str) or not isinstance(status, str):
            return json_response(400, {"error": "expected sid and status strings"})
        code = args.get("error_code")
        try:
            return await relay(self.push_status(sid, status,
                                                error_code=int(code) if code else None))
        except (KeyError, ValueError) as error:
            return json_response(400, {"error": str(error)})


def _more_info(code: int) -> str:
    return f"https://www.twilio.com/docs/errors/{code}"


def _e164(number: str) -> bool:
    return number.startswith("+") and number[1:].isdigit() and 8 <= len(number) <= 16


async def serve_forever(host: str, port: int, account_sid: str, auth_token: str) -> None:
    """Run a simulator until cancelled (for `pbxsms twilio simulator`)."""
    sim = TwilioSimulator(auth_token, account_sid)
    url = await sim.start(host, port)
    print(f"Twilio simulator on {url} (account {account_sid}); control API at {url}/_sim/")
    print(f"Point a gateway at it with TWILIO_BASE_URL={url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()

