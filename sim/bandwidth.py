"""A local stand-in for Bandwidth's Messaging API v2 and its OAuth2 token endpoint, for
tests, demos and benchmarks.

Shapes follow Bandwidth's documentation (the project's providers reference §3):
`POST /api/v1/oauth2/token` (client credentials, Basic auth) answers
`{"access_token", "token_type": "Bearer", "expires_in"}`; `POST
/api/v2/users/{accountId}/messages` answers 202 with the message object; errors are
`{"type", "description"}` (400 adds `fieldErrors`), 429 is the full queue. Callbacks are
JSON arrays of events, sent with the application's callback credentials as Basic auth.
Where Bandwidth documents nothing, the choice made here is marked "undocumented".

Besides the API the server offers an unauthenticated control API under `/_sim/`.
"""

from __future__ import annotations

import base64
import json
import random
import string
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, get_args
from urllib.parse import parse_qsl

from aiohttp import web

from pbxsms.sim.carrier import CarrierSimulator, RecordedRequest, e164, now_iso
from pbxsms.sim.clicksend import message_parts
from pbxsms.sim.server import (
    ControlHandler,
    JsonDict,
    answered,
    control_json,
    json_response,
    relay,
)

__all__ = ["TOKEN_PATH", "BandwidthSimulator", "FaultKind", "PushResult", "serve_forever"]

TOKEN_PATH = "/api/v1/oauth2/token"  # noqa: S105 (a path, not a secret)
API_PREFIX = "/api/v2"

FaultKind = Literal["429", "500", "store_then_500", "drop", "delay", "401", "403"]
_FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)

# What `serve_forever` may be given.
CREDENTIALS = ("account_id", "application_id", "client_id", "client_secret",
               "callback_username", "callback_password")
# (errorCode, description) of `message-failed` callbacks, from Bandwidth's errors page.
OPTED_OUT = (4775, "destination-rejected-due-to-user-opt-out")
UNROUTABLE = (4720, "rejected-invalid-destination")


def _message_id() -> str:
    """Bandwidth's ids: milliseconds and 15 random lower-case letters and digits."""
    tail = "".join(random.choices(string.ascii_lowercase + string.digits, k=15))  # noqa: S311
    return f"{int(time.time() * 1000)}{tail}"


def error(kind: str, description: str, fields: Iterable[tuple[str, str]] = ()) -> JsonDict:
    body: JsonDict = {"type": kind, "description": description}
    found = [{"fieldName": name, "description": text} for name, text in fields]
    if found:
        body["fieldErrors"] = found
    return body


@dataclass
class Fault:
    kind: FaultKind
    delay: float = 0.0


@dataclass
class PushResult:
    status: int
    body: str
    url: str
    payload: list[JsonDict]


class BandwidthSimulator(CarrierSimulator[Fault]):
    """In-memory Bandwidth: one account with one Messaging application, an OAuth client,
    tokens, sent messages, opted-out numbers and injectable faults.

    With `callback_url` set (the application's), each accepted message is followed by a
    `message-delivered` callback, or `message-failed` (4775) for an opted-out recipient.
    """

    def __init__(
        self,
        *,
        account_id: str = "9900000",
        application_id: str | None = None,
        client_id: str = "sim-client",
        # The simulator's own made-up credentials, for demos.
        client_secret: str = "sim-client-secret",  # noqa: S107
        callback_username: str = "bw-callbacks",
        callback_password: str = "bw-callback-password",  # noqa: S107
        callback_url: str | None = None,
        token_lifetime: int = 3600,
        push_timeout: float = 10.0,
    ) -> None:
        super().__init__(push_timeout)
        self.account_id = account_id
        self.application_id = application_id or str(uuid.uuid4())
        self.client_id = client_id
        self.client_secret = client_secret
        self.callback_username = callback_username
        self.callback_password = callback_password
        self.callback_url = callback_url
        self.token_lifetime = token_lifetime
        self.tokens: dict[str, float] = {}  # token → expiry (monotonic)

    # ---- configuration -------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """BANDWIDTH_BASE_URL for a gateway."""
        return self.base_url + API_PREFIX

    @property
    def token_url(self) -> str:
        """BANDWIDTH_TOKEN_URL for a gateway."""
        return self.base_url + TOKEN_PATH

    def fail_next(self, kind: FaultKind, count: int = 1, *, delay: float = 0.0) -> None:
        """Queue faults for the next sends (`store_then_500` takes the message, then
        answers 500; `drop` closes the connection unanswered; `401` refuses the token)."""
        if kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {_FAULT_KINDS}")
        self.faults.extend(Fault(kind, delay) for _ in range(count))

    def expire_tokens(self) -> None:
        """Every token issued so far stops working (a revocation)."""
        self.tokens.clear()

    @property
    def send_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/messages")]

    @property
    def token_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == TOKEN_PATH]

    def create_app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    # ---- callbacks -----------------------------------------------------------------------

    def event(self, kind: str, message: JsonDict, to: str, description: str,
              error_code: int | None = None) -> JsonDict:
        item: JsonDict = {"type": kind, "time": now_iso(), "description": description,
                          "to": to, "message": message}
        if error_code is not None:
            item["errorCode"] = error_code
        return item

    async def push(self, url: str, events: list[JsonDict], *,
                   auth: tuple[str, str] | None = None) -> PushResult:
        """POST a callback (an array of events) with the callback credentials, or `auth`."""
        user, password = auth or (self.callback_username, self.callback_password)
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers = {"Content-Type": "application/json", "Authorization": f"Basic {basic}",
                   "User-Agent": "BandwidthAPI/v2"}
        async with self.session.post(url, data=json.dumps(events).encode(),
                                     headers=headers) as response:
            return PushResult(response.status, await response.text(), url, events)

    def inbound_event(self, from_: str, to: str, text: str,
                      message_id: str | None = None) -> JsonDict:
        message = {"id": message_id or _message_id(), "owner": to,
                   "applicationId": self.application_id, "time": now_iso(),
                   "segmentCount": message_parts(text) if text else 1, "direction": "in",
                   "to": [to], "from": from_, "text": text, "media": []}
        return self.event("message-received", message, to, "Incoming message received")

    async def push_inbound(self, url: str, from_: str, to: str, text: str, *,
                           message_id: str | None = None,
                           auth: tuple[str, str] | None = None) -> PushResult:
        """Deliver a `message-received` callback."""
        return await self.push(url, [self.inbound_event(from_, to, text, message_id)],
                               auth=auth)

    def receipt_event(self, message_id: str, kind: str = "message-delivered",
                      error_code: int | None = None, description: str | None = None
                      ) -> JsonDict:
        record = next((m for m in self.sent_messages if m["id"] == message_id), None)
        message: JsonDict = dict(record) if record is not None else {
            "id": message_id, "owner": "+15550000000", "applicationId": self.application_id,
            "time": now_iso(), "segmentCount": 1, "direction": "out",
            "to": ["+15550000001"], "from": "+15550000000", "text": ""}
        message["text"] = ""  # Bandwidth's status callbacks leave the text out
        to = message["to"][0]
        text = description or ("ok" if kind == "message-delivered" else "failed")
        return self.event(kind, message, to, text, error_code)

    async def push_receipt(self, url: str, message_id: str, kind: str = "message-delivered",
                           *, error_code: int | None = None,
                           description: str | None = None) -> PushResult:
        """Deliver `message-delivered`, `message-failed` (with `error_code`) or
        `message-sending`."""
        return await self.push(url, [self.receipt_event(message_id, kind, error_code,
                                                        description)])

    def _follow_up(self, record: JsonDict) -> None:
        url = self.callback_url
        if not url:
            return
        to = record["to"][0]
        if to in self.opted_out:
            event = self.receipt_event(record["id"], "message-failed", *OPTED_OUT)
        else:
            event = self.receipt_event(record["id"])

        # Bandwidth retries for 24 h; a few times here.
        self.in_background(self.push_until_taken(partial(self.push, url, [event]), 20))

    # ---- HTTP ----------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/_sim/"):
            return await self.control(request)
        raw = await request.read()
        body: Any
        if request.path == TOKEN_PATH:
            body = dict(parse_qsl(raw.decode(errors="replace")))
        else:
            body = self.json_body(raw)
        rec = self.record(request, body)
        return answered(rec, await self._route(request, rec))

    async def _route(self, request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        if request.method == "POST" and request.path == TOKEN_PATH:
            return self._token(request, rec.body)
        messages = f"{API_PREFIX}/users/{self.account_id}/messages"
        send = request.method == "POST" and request.path.startswith(f"{API_PREFIX}/users/") \
            and request.path.endswith("/messages")
        fault, dropped = await self.take_fault(request, rec, send)
        if dropped is not None:
            return dropped
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        expiry = self.tokens.get(token) if scheme == "Bearer" else None
        if expiry is None or time.monotonic() >= expiry or (fault and fault.kind == "401"):
            return json_response(401, error("unauthorized", "Authentication Failed"))
        if not send:
            return json_response(404, error("not-found", "Resource not found"))
        if request.path != messages or (fault and fault.kind == "403"):
            return json_response(403, error("forbidden", "Access To Resource Forbidden"))
        if fault is not None and fault.kind == "429":
            return json_response(429, error(
                "max-message-queue-size-exceeded",
                "The SMS queue for your account is full and cannot accept more messages "
                "right now. Your allowed rate is 60 messages per minute. The capacity of "
                "this queue is 900 messages (15 minutes). Reduce your message sending rate, "
                "or contact support to increase your allowed rate."))
        if fault is not None and fault.kind == "500":
            return json_response(500, error("internal-server-error", "Internal server error"))
        status, answer = self._send(rec.body)
        if fault is not None and fault.kind == "store_then_500" and status == 202:
            return json_response(500, error("internal-server-error", "Internal server error"))
        return json_response(status, answer)

    def _token(self, request: web.Request, form: Any) -> web.Response:
        given = None
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme == "Basic":
            try:
                given = base64.b64decode(encoded).decode()
            except (ValueError, UnicodeDecodeError):
                given = None
        if given != f"{self.client_id}:{self.client_secret}":
            return json_response(401, {"error": "invalid_client",
                                       "error_description": "Client authentication failed"})
        if not isinstance(form, dict) or form.get("grant_type") != "client_credentials":
            return json_response(400, {"error": "unsupported_grant_type",
                                       "error_description": "grant_type must be "
                                                            "client_credentials"})
        token = base64.urlsafe_b64encode(uuid.uuid4().bytes * 2).decode().rstrip("=")
        self.tokens[token] = time.monotonic() + self.token_lifetime
        return json_response(200, {"access_token": token, "token_type": "Bearer",
                                   "expires_in": self.token_lifetime})

    def _send(self, body: Any) -> tuple[int, JsonDict]:
        if not isinstance(body, dict):
            return 400, error("request-validation", "Your request could not be accepted",
                              [("body", "must be a JSON object")])
        problems = []
        if body.get("applicationId") != self.application_id:
            problems.append(("applicationId", "is not an application of this account"))
        to = body.get("to")
        recipients = [e164(n) for n in to] if isinstance(to, list) else []
        if not recipients or None in recipients:
            problems.append(("to", "must be a list of E.164 numbers"))
        elif len(recipients) > 10:
            problems.append(("to", "a group message has at most 10 participants (4435)"))
        sender = e164(body.get("from"))
        if sender is None:
            problems.append(("from", "must be an E.164 number"))
        text = body.get("text")
        if not isinstance(text, str) or not text:
            problems.append(("text", "must not be empty"))
        tag = body.get("tag")
        if tag is not None and (not isinstance(tag, str) or len(tag) > 1024):
            problems.append(("tag", "at most 1024 characters"))
        if problems:
            return 400, error("request-validation", "Your request could not be accepted",
                              problems)
        assert isinstance(text, str) and sender is not None
        record: JsonDict = {
            "id": _message_id(), "owner": sender, "applicationId": self.application_id,
            "time": now_iso(), "segmentCount": message_parts(text), "direction": "out",
            "to": [n for n in recipients if n], "from": sender, "media": [], "text": text,
            "priority": body.get("priority", "default")}
        if tag is not None:
            record["tag"] = tag
        self.sent_messages.append(record)
        self._follow_up(record)
        return 202, record

    # ---- /_sim/ controls -----------------------------------------------------------------

    def control_routes(self) -> dict[tuple[str, str], ControlHandler]:
        return {
            **self.carrier_controls(),
            ("POST", "/_sim/fail"): self._ctl_fail,
            ("POST", "/_sim/config"): self._ctl_config,
            ("POST", "/_sim/inbound"): self._ctl_inbound,
            ("POST", "/_sim/receipt"): self._ctl_receipt,
        }

    async def _ctl_fail(self, request: web.Request) -> web.StreamResponse:
        """Queue faults: {"kind", "count", "delay"}."""
        args = await control_json(request)
        kind = args.get("kind")
        if kind not in _FAULT_KINDS:
            return json_response(400, {"error": f"kind must be one of {list(_FAULT_KINDS)}"})
        self.fail_next(kind, int(args.get("count", 1)), delay=float(args.get("delay", 0)))
        return json_response(200, {"ok": True})

    async def _ctl_config(self, request: web.Request) -> web.StreamResponse:
        """Set {"callback_url"}."""
        args = await control_json(request)
        if "callback_url" in args:
            self.callback_url = args["callback_url"] or None
        return json_response(200, {"ok": True})

    async def _ctl_inbound(self, request: web.Request) -> web.StreamResponse:
        """Push a `message-received` callback: {"url", "from", "to", "text"}."""
        args = await control_json(request)
        return await relay(self.push_inbound(str(args["url"]), str(args["from"]),
                                             str(args["to"]), str(args.get("text", ""))))

    async def _ctl_receipt(self, request: web.Request) -> web.StreamResponse:
        """Push a receipt: {"url", "message_id", "type", "error_code"}."""
        args = await control_json(request)
        code = args.get("error_code")
        return await relay(self.push_receipt(
            str(args["url"]), str(args["message_id"]), str(args.get("type",
                                                                    "message-delivered")),
            error_code=int(code) if code is not None else None))


async def serve_forever(host: str, port: int, *, callback_url: str | None = None,
                        **given: str) -> None:
    """Run a simulator until cancelled (`pbxsms bandwidth simulator`); `given` sets the
    account, application, client and callback credentials it accepts."""
    sim = BandwidthSimulator(callback_url=callback_url)
    for name, value in given.items():
        if name not in CREDENTIALS:
            raise TypeError(f"unknown simulator setting {name!r}")
        setattr(sim, name, value)
    url = await sim.start(host, port)
    print(f"Bandwidth simulator on {url}; control API at {url}/_sim/")
    print(f"Point a gateway at it with BANDWIDTH_BASE_URL={sim.api_url} "
          f"BANDWIDTH_TOKEN_URL={sim.token_url} BANDWIDTH_ACCOUNT_ID={sim.account_id} "
          f"BANDWIDTH_APPLICATION_ID={sim.application_id} BANDWIDTH_CLIENT_ID={sim.client_id} "
          f"BANDWIDTH_CALLBACK_USERNAME={sim.callback_username}"
          + ("" if "client_secret" in given else " (client secret and callback password: "
             "the simulator's defaults, see `pbxsms bandwidth simulator --help`)"),
          flush=True)
    await sim.serve_until_cancelled()
