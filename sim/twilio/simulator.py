"""The Twilio simulator put together: the account's state, its REST API, and what it
posts to a gateway (inbound messages, status callbacks), signed as Twilio signs them."""

from __future__ import annotations

import base64
import binascii
import hmac
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

import pbxsms.sim.twilio.shapes as shapes
from pbxsms.sim.server import (
    ControlHandler,
    FaultPlan,
    SimulatedService,
    answered,
    check_fault_kind,
    drop_connection,
    json_response,
)
from pbxsms.sim.twilio.controls import TwilioControls
from pbxsms.sim.twilio.shapes import API, API_VERSION, FAULT_KINDS, FaultKind, JsonDict

DEFAULT_ACCOUNT_SID = "AC" + "0" * 31 + "1"


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
    """In-memory Twilio account: messages created and received, numbers, faults."""

    def __init__(self, auth_token: str, account_sid: str = DEFAULT_ACCOUNT_SID, *,
                 numbers: list[str] | None = None, friendly_name: str = "pbxsms simulator",
                 account_type: str = "Full", account_status: str = "active",
                 push_timeout: float = 15.0) -> None:
        super().__init__(push_timeout)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.friendly_name = friendly_name
        self.account_type = account_type
        self.account_status = account_status
        # The account's IncomingPhoneNumbers: From must be one of them (none: any From).
        self.numbers: dict[str, JsonDict] = {}
        self.messages: list[JsonDict] = []
        self.requests: list[RecordedRequest] = []
        self.faults: FaultPlan[Fault] = FaultPlan()
        self.status_callbacks: dict[str, str] = {}
        self.pushes: list[PushResult] = []
        # Public base URL → where it really is (a TLS proxy in front of a gateway).
        self.proxies: dict[str, str] = {}
        self._created = time.time()
        for number in numbers or []:
            self.add_number(number)

    # ---- configuration and inspection ------------------------------------------------

    def add_number(self, number: str, sms_url: str = "", sms_method: str = "POST"
                   ) -> JsonDict:
        """An IncomingPhoneNumber of the account, with its "A MESSAGE COMES IN" webhook."""
        record = shapes.incoming_number(self.account_sid, number, sms_url, sms_method,
                                        time.time())
        self.numbers[number] = record
        return record

    def behind_proxy(self, public_url: str, local_url: str) -> None:
        """Deliver what is addressed to `public_url` to `local_url`, still signed for the
        public URL, as Twilio's request reaches a gateway through a TLS proxy."""
        self.proxies[public_url.rstrip("/")] = local_url.rstrip("/")

    def fail_next(self, kind: FaultKind, count: int = 1, *, retry_after: int = 1,
                  delay: float = 0.0) -> None:
        """Queue `count` faults for the next message creations: `429` (20429 with
        Retry-After), `500`, `503`, `store_then_500` (created, then a 500: the ambiguous
        case), `drop` (connection closed before an answer), `delay` (answers late)."""
        check_fault_kind(kind, FAULT_KINDS)
        self.faults.queued.extend(Fault(kind, retry_after, delay) for _ in range(count))

    def reset(self) -> None:
        """Forget messages, calls, faults and pushes; keep the account and its numbers."""
        self.messages.clear()
        self.requests.clear()
        self.faults.clear()
        self.pushes.clear()
        self.status_callbacks.clear()

    @property
    def sent(self) -> list[JsonDict]:
        """Messages created through the API, oldest first."""
        return [m for m in self.messages if m["direction"] == "outbound-api"]

    @property
    def create_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests
                if r.method == "POST" and r.path.endswith("/Messages.json")]

    def message(self, sid: str) -> JsonDict | None:
        return next((m for m in self.messages if m["sid"] == sid), None)

    # ---- lifecycle -------------------------------------------------------------------

    def create_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    def control_routes(self) -> dict[tuple[str, str], ControlHandler]:
        return TwilioControls(self).routes()

    # ---- webhooks pushed to a gateway ------------------------------------------------

    async def push_inbound(self, url: str, from_: str, to: str, body: str, *,
                           sid: str | None = None, sign_url: str | None = None,
                           token: str | None = None) -> PushResult:
        """Post an inbound message to `url` as Twilio's "A MESSAGE COMES IN" webhook does.

        `sign_url` signs for another URL than the one posted to; `token` signs with
        another auth token (both to test refusals).
        """
        sid = sid or shapes.new_sid("SM")
        self.messages.append(shapes.message(self.account_sid, sid, from_, to, body,
                                            "received", time.time(), direction="inbound"))
        params = [
            ("ToCountry", "US"), ("ToState", ""), ("SmsMessageSid", sid), ("NumMedia", "0"),
            ("ToCity", ""), ("FromZip", ""), ("SmsSid", sid), ("FromState", ""),
            ("SmsStatus", "received"), ("FromCity", ""), ("Body", body),
            ("FromCountry", "US"), ("To", to), ("ToZip", ""),
            ("NumSegments", str(shapes.segments(body))), ("MessageSid", sid),
            ("AccountSid", self.account_sid), ("From", from_), ("ApiVersion", API_VERSION),
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
        message["date_updated"] = shapes.rfc2822(time.time())
        if status in ("sent", "delivered") and message["date_sent"] is None:
            message["date_sent"] = message["date_updated"]
        if error_code is not None:
            message["error_code"] = error_code
            message["error_message"] = shapes.ERRORS.get(error_code, (0, ""))[1] or None
        params = [("SmsSid", sid), ("SmsStatus", status), ("MessageStatus", status),
                  ("To", message["to"]), ("MessageSid", sid),
                  ("AccountSid", self.account_sid), ("From", message["from"]),
                  ("ApiVersion", API_VERSION)]
        if error_code is not None:
            params.append(("ErrorCode", str(error_code)))
        return await self.post_signed(target, params, sign_url=sign_url, token=token)

    async def post_signed(self, url: str, params: list[tuple[str, str]], *,
                          sign_url: str | None = None, token: str | None = None,
                          data: bytes | None = None,
                          headers: dict[str, str] | None = None) -> PushResult:
        """Post a form signed as Twilio signs it. `data`, when given, is sent instead of
        the encoded `params` (a tampered body), with the signature of `params`."""
        signature = shapes.sign(token or self.auth_token, sign_url or url, params)
        sent = {"Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1",
                "I-Twilio-Idempotency-Token": str(uuid.uuid4()), **(headers or {})}
        body = data if data is not None else urlencode(params).encode()
        return await self.post_raw(url, body, sent, params)

    async def post_raw(self, url: str, body: bytes, headers: dict[str, str],
                       params: list[tuple[str, str]] | None = None) -> PushResult:
        """Post exactly these bytes and headers to `url` (through its proxy, if any)."""
        async with self.session.post(self._through_proxy(url), data=body,
                                     headers=headers) as response:
            result = PushResult(response.status, await response.text(), url,
                                list(params or parse_qsl(body.decode(errors="replace"),
                                                         keep_blank_values=True)),
                                body, dict(headers))
        self.pushes.append(result)
        return result

    async def replay(self, push: PushResult) -> PushResult:
        """Post an earlier push again, byte for byte, signature included."""
        return await self.post_raw(push.url, push.data, push.headers, push.params)

    def _through_proxy(self, url: str) -> str:
        for public, local in self.proxies.items():
            if url == public or url.startswith((public + "/", public + "?")):
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
            return answered(rec, shapes.error(20003))
        route = (request.method, request.path)
        if route == ("GET", f"{base}.json"):
            return answered(rec, json_response(200, shapes.account(
                self.account_sid, self.auth_token, self.friendly_name, self.account_status,
                self.account_type, self._created)))
        if route == ("POST", f"{base}/Messages.json"):
            response = await self._create(request, rec)
            if isinstance(response, web.Response):
                return answered(rec, response)
            return response
        if route == ("GET", f"{base}/Messages.json"):
            return answered(rec, json_response(200, self._list(request)))
        if route == ("GET", f"{base}/IncomingPhoneNumbers.json"):
            wanted = request.query.get("PhoneNumber")
            found = [n for number, n in self.numbers.items() if not wanted or number == wanted]
            return answered(rec, json_response(200, shapes.page(
                "incoming_phone_numbers", f"{base}/IncomingPhoneNumbers.json", found, 50)))
        prefix = f"{base}/Messages/"
        if request.method == "GET" and request.path.startswith(prefix):
            found_message = self.message(request.path[len(prefix):].removesuffix(".json"))
            if found_message is not None:
                return answered(rec, json_response(200, found_message))
        return answered(rec, shapes.error(20404, path=request.path))

    def _authenticated(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            pair = base64.b64decode(header[6:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, _, password = pair.partition(":")
        return hmac.compare_digest(user.encode(), self.account_sid.encode()) and \
            hmac.compare_digest(password.encode(), self.auth_token.encode())

    async def _create(self, request: web.Request, rec: RecordedRequest
                      ) -> web.StreamResponse:
        """`POST .../Messages.json`: validated as Twilio does, then stored as `queued`."""
        fault = self.faults.take()
        if fault is not None:
            rec.fault = fault.kind
            if fault.kind == "drop":
                return drop_connection(request)
            if fault.kind == "429":
                return shapes.error(20429, headers={"Retry-After": str(fault.retry_after)})
            if fault.kind in ("500", "503"):
                return shapes.error(int("20" + fault.kind))
            if fault.kind == "delay":
                await self.pause(fault.delay)
        form = {name: values[0] for name, values in rec.form.items()}
        to, from_, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        refused = self._refusal(form, to, from_, body)
        if refused is not None:
            return shapes.error(refused, to=to, from_=from_)
        sid = shapes.new_sid("SM")
        self.messages.append(shapes.message(self.account_sid, sid, from_, to, body, "queued",
                                            time.time()))
        if form.get("StatusCallback"):
            self.status_callbacks[sid] = form["StatusCallback"]
        if fault is not None and fault.kind == "store_then_500":
            return shapes.error(20500)
        return json_response(201, self.messages[-1])

    def _refusal(self, form: dict[str, str], to: str, from_: str, body: str) -> int | None:
        """The error code Twilio answers this creation with, None when it is taken."""
        if not to:
            return 21604
        if not from_ and not form.get("MessagingServiceSid"):
            return 21603
        if not body and not form.get("MediaUrl"):
            return 21602
        if len(body) > shapes.MAX_BODY:
            return 21617
        if from_ in shapes.MAGIC_FROM:
            return shapes.MAGIC_FROM[from_]
        if to in shapes.MAGIC_TO:
            return shapes.MAGIC_TO[to]
        if not shapes.e164(to):
            return 21211
        if self.numbers and from_ not in self.numbers and from_ != shapes.MAGIC_VALID_FROM:
            return 21606
        return None

    def _list(self, request: web.Request) -> JsonDict:
        """One page of messages, newest first, filtered by `To` and `From`."""
        query = request.query
        try:
            size = min(max(int(query.get("PageSize") or 50), 1), 1000)
        except ValueError:
            size = 50
        chosen = [m for m in reversed(self.messages)
                  if (not query.get("To") or m["to"] == query["To"])
                  and (not query.get("From") or m["from"] == query["From"])][:size]
        return shapes.page("messages", f"{API}/Accounts/{self.account_sid}/Messages.json",
                           chosen, size)


async def serve_forever(host: str, port: int, account_sid: str, auth_token: str) -> None:
    """Run a simulator until cancelled (for `pbxsms twilio simulator`)."""
    sim = TwilioSimulator(auth_token, account_sid)
    url = await sim.start(host, port)
    print(f"Twilio simulator on {url} (account {account_sid}); control API at {url}/_sim/")
    print(f"Point a gateway at it with TWILIO_BASE_URL={url}", flush=True)
    await sim.serve_until_cancelled()
