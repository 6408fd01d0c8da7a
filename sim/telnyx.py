"""A local stand-in for Telnyx's Messaging API v2, for tests, demos and benchmarks.

Shapes follow Telnyx's documentation and its SDK's types (the project's providers
reference §1): JSON:API-style `{"data": ...}` envelopes, errors as
`{"errors": [{"code", "title", "detail"}]}`, `x-ratelimit-*` headers, 401 for a bad key,
422 for a refused message, 429 with code 10011 over the rate limit. Webhooks it pushes are
signed like Telnyx's: Ed25519 over `<telnyx-timestamp>|<raw body>` with the simulator's
own key pair, whose public key (`public_key`) is what a gateway is configured with.
Where Telnyx documents nothing, the choice made here is marked "undocumented".

Besides `/v2/*` the server offers an unauthenticated control API under `/_sim/` to inject
faults, opt numbers out, inspect what was sent, and push inbound messages and receipts.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, get_args

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

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

__all__ = ["MESSAGES_PATH", "Fault", "FaultKind", "PushResult", "TelnyxSimulator",
           "serve_forever"]

MESSAGES_PATH = "/v2/messages"
PROFILES_PATH = "/v2/messaging_profiles"
SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"

FaultKind = Literal["429", "500", "503", "store_then_500", "drop", "delay", "401"]
_FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)

# Final `to[].status` values of `message.finalized`.
FINAL_STATUSES = ("delivered", "delivery_failed", "sending_failed", "delivery_unconfirmed",
                  "expired")

# (code, title, detail) of the documented errors the simulator answers.
AUTH_FAILED = ("10009", "Authentication failed",
               "The API key looks malformed. Check that you copied it correctly.")
RATE_LIMITED = ("10011", "Too many requests",
                "You have exceeded the maximum number of allowed requests.")
UNEXPECTED = ("10007", "Unexpected error", "An unexpected error occurred.")
NOT_FOUND = ("10005", "Resource not found",
             "The requested resource or URL could not be found.")
OPTED_OUT = ("40300", "Blocked due to STOP message",
             "Messages to this number are blocked because the recipient replied STOP.")
INVALID_TO = ("40310", "Invalid 'to' address", "The 'to' address is not a valid number.")
INVALID_FROM = ("40305", "Invalid 'from' address",
                "The 'from' address is not a number of this messaging profile.")
MISSING = ("10015", "Bad Request", "The request failed because a required parameter is "
           "missing.")


def error_body(*errors: tuple[str, str, str], pointer: str | None = None) -> JsonDict:
    items = []
    for code, title, detail in errors:
        item: JsonDict = {"code": code, "title": title, "detail": detail}
        if pointer:
            item["source"] = {"pointer": pointer}
        items.append(item)
    return {"errors": items}


@dataclass
class Fault:
    """One queued misbehaviour of `POST /v2/messages`."""

    kind: FaultKind
    reset: int = 1
    delay: float = 0.0


@dataclass
class PushResult:
    """What the gateway answered to a pushed webhook, and exactly what was pushed."""

    status: int
    body: str
    url: str
    payload: JsonDict
    raw: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class TelnyxSimulator(CarrierSimulator[Fault]):
    """In-memory Telnyx: API keys, a messaging profile, sent messages, opted-out numbers,
    injectable faults, and a signing key for the webhooks it pushes.

    With `webhook_url` set (the messaging profile's URL), each accepted message is
    followed by `message.sent` and `message.finalized` pushes (status `final_status`).
    """

    def __init__(
        self,
        api_keys: Iterable[str] = ("sim-telnyx-key",),
        *,
        profile_id: str | None = None,
        profile_name: str = "pbxsms simulator",
        webhook_url: str | None = None,
        final_status: str = "delivered",
        rate_limit: int = 0,
        push_timeout: float = 10.0,
    ) -> None:
        super().__init__(push_timeout)
        self.api_keys = set(api_keys)
        self.profile_id = profile_id or str(uuid.uuid4())
        self.profile_name = profile_name
        self.organization_id = str(uuid.uuid4())
        self.webhook_url = webhook_url
        self.final_status = final_status
        # Requests per second per key; 0: unlimited (Telnyx's is per account).
        self.rate_limit = rate_limit
        self.signing_key = Ed25519PrivateKey.generate()
        # The messaging profile's numbers; empty: any `from` is taken.
        self.numbers: set[str] = set()
        self._window: dict[str, tuple[int, int]] = {}

    # ---- configuration -------------------------------------------------------------------

    @property
    def public_key(self) -> str:
        """Base64 of the raw Ed25519 public key, as Mission Control shows it."""
        raw = self.signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    def fail_next(self, kind: FaultKind, count: int = 1, *, reset: int = 1,
                  delay: float = 0.0) -> None:
        """Queue `count` faults for the next sends. `store_then_500` takes the message and
        answers 500 (the ambiguous case); `drop` closes the connection unanswered;
        `delay` answers normally after `delay` seconds; `401` refuses the key."""
        if kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {_FAULT_KINDS}")
        self.faults.extend(Fault(kind, reset, delay) for _ in range(count))

    def reset(self) -> None:
        super().reset()
        self._window.clear()

    @property
    def send_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path == MESSAGES_PATH]

    def create_app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    # ---- signing and pushing webhooks ----------------------------------------------------

    def sign(self, timestamp: str, raw: bytes) -> str:
        """Base64 of the Ed25519 signature of `<timestamp>|<raw body>`."""
        return base64.b64encode(self.signing_key.sign(timestamp.encode() + b"|" + raw)).decode()

    def envelope(self, event_type: str, payload: JsonDict, *, attempt: int = 1,
                 delivered_to: str = "", event_id: str | None = None) -> JsonDict:
        return {"data": {"event_type": event_type, "id": event_id or str(uuid.uuid4()),
                         "occurred_at": now_iso(), "payload": payload,
                         "record_type": "event"},
                "meta": {"attempt": attempt, "delivered_to": delivered_to}}

    async def push(self, url: str, body: JsonDict | bytes, *, timestamp: int | None = None,
                   signature: str | None = None) -> PushResult:
        """POST a webhook signed now (or at `timestamp`); `signature` replaces the real one."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: stamp,
                   SIGNATURE_HEADER: signature if signature is not None else self.sign(stamp, raw)}
        return await self.push_raw(url, raw, headers)

    async def push_raw(self, url: str, raw: bytes, headers: Mapping[str, str]) -> PushResult:
        """POST exactly these bytes and headers (a replay, a tampered body)."""
        async with self.session.post(url, data=raw, headers=dict(headers)) as response:
            text = await response.text()
        payload = json.loads(raw) if raw.strip().startswith(b"{") else {}
        return PushResult(response.status, text, url, payload, raw, dict(headers))

    def inbound_payload(self, from_: str, to: str, text: str,
                        message_id: str | None = None) -> JsonDict:
        """A `message.received` payload as documented (SMS, no media)."""
        return {
            "record_type": "message", "direction": "inbound",
            "id": message_id or str(uuid.uuid4()), "type": "SMS",
            "messaging_profile_id": self.profile_id, "organization_id": self.organization_id,
            "from": {"phone_number": from_, "carrier": "T-Mobile USA", "line_type": "Wireless"},
            "to": [{"phone_number": to, "carrier": "Telnyx", "line_type": "Wireless",
                    "status": "webhook_delivered"}],
            "text": text, "media": [], "encoding": "GSM-7", "parts": message_parts(text),
            "cc": [], "tags": [], "cost": None, "received_at": now_iso(), "sent_at": None,
            "completed_at": None, "valid_until": None, "errors": [],
            "webhook_url": self.webhook_url, "webhook_failover_url": None,
        }

    async def push_inbound(self, url: str, from_: str, to: str, text: str, *,
                           message_id: str | None = None,
                           timestamp: int | None = None) -> PushResult:
        """Deliver a `message.received` webhook, signed."""
        body = self.envelope("message.received",
                             self.inbound_payload(from_, to, text, message_id),
                             delivered_to=url)
        return await self.push(url, body, timestamp=timestamp)

    def receipt_payload(self, message_id: str, status: str,
                        errors: Iterable[tuple[str, str, str]] = ()) -> JsonDict:
        """The outbound message record with `to[0].status` = `status`."""
        record = next((m for m in self.sent_messages if m["id"] == message_id), None)
        payload = dict(record) if record is not None else self._record(
            message_id, "+15550000000", "+15550000001", "", self.profile_id)
        payload["to"] = [{**payload["to"][0], "status": status}]
        payload["errors"] = [{"code": c, "title": t, "detail": d} for c, t, d in errors]
        if status in FINAL_STATUSES:
            payload["completed_at"] = now_iso()
        if status in ("sent", *FINAL_STATUSES):
            payload["sent_at"] = payload.get("sent_at") or now_iso()
        return payload

    async def push_receipt(self, url: str, message_id: str, status: str = "delivered", *,
                           errors: Iterable[tuple[str, str, str]] = (),
                           event_type: str | None = None,
                           timestamp: int | None = None) -> PushResult:
        """Deliver `message.sent` (status `sent`) or `message.finalized` (a final status)."""
        kind = event_type or ("message.sent" if status == "sent" else "message.finalized")
        body = self.envelope(kind, self.receipt_payload(message_id, status, errors),
                             delivered_to=url)
        return await self.push(url, body, timestamp=timestamp)

    def _follow_up(self, message_id: str) -> None:
        """`message.sent` then `message.finalized` to the profile's webhook URL, in the
        background (Telnyx's events are asynchronous to the send)."""
        url = self.webhook_url
        if not url:
            return

        async def deliver() -> None:
            for status in ("sent", self.final_status):
                # Telnyx: up to 3 attempts per URL.
                await self.push_until_taken(partial(self.push_receipt, url, message_id, status),
                                            3)

        self.in_background(deliver())

    # ---- HTTP ----------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/_sim/"):
            return await self.control(request)
        rec = self.record(request, self.json_body(await request.read()))
        return answered(rec, await self._api(request, rec))

    def _authorized(self, request: web.Request, fault: Fault | None) -> bool:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        return scheme == "Bearer" and key in self.api_keys and not (
            fault is not None and fault.kind == "401")

    def _limit_headers(self, key: str) -> tuple[dict[str, str], bool]:
        """`x-ratelimit-*` for this key's one-second window; True when over the limit."""
        if not self.rate_limit:
            return {}, False
        second = int(time.time())
        start, used = self._window.get(key, (second, 0))
        if start != second:
            start, used = second, 0
        used += 1
        self._window[key] = (start, used)
        headers = {"x-ratelimit-limit": str(self.rate_limit),
                   "x-ratelimit-remaining": str(max(self.rate_limit - used, 0)),
                   "x-ratelimit-reset": "1"}
        return headers, used > self.rate_limit

    async def _api(self, request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        send = request.method == "POST" and request.path == MESSAGES_PATH
        fault, dropped = await self.take_fault(request, rec, send)
        if dropped is not None:
            return dropped
        if not self._authorized(request, fault):
            return json_response(401, error_body(AUTH_FAILED))
        key = request.headers["Authorization"].partition(" ")[2]
        headers, over = self._limit_headers(key)
        if over or (fault is not None and fault.kind == "429"):
            headers = {**headers, "x-ratelimit-reset": str(fault.reset if fault else 1)}
            return json_response(429, error_body(RATE_LIMITED), headers)
        if fault is not None and fault.kind in ("500", "503"):
            return json_response(int(fault.kind), error_body(UNEXPECTED), headers)
        if send:
            status, answer = self._send(rec.body)
            if fault is not None and fault.kind == "store_then_500" and status == 200:
                return json_response(500, error_body(UNEXPECTED), headers)
            return json_response(status, answer, headers)
        if request.method == "GET" and request.path.startswith(MESSAGES_PATH + "/"):
            wanted = request.path[len(MESSAGES_PATH) + 1:]
            record = next((m for m in self.sent_messages if m["id"] == wanted), None)
            if record is None:
                return json_response(404, error_body(NOT_FOUND), headers)
            return json_response(200, {"data": record}, headers)
        if request.method == "GET" and request.path == PROFILES_PATH:
            return json_response(200, {"data": [self._profile()],
                                       "meta": {"page_number": 1, "page_size": 20,
                                                "total_pages": 1, "total_results": 1}},
                                 headers)
        return json_response(404, error_body(NOT_FOUND), headers)

    def _send(self, body: Any) -> tuple[int, JsonDict]:
        if not isinstance(body, dict):
            return 400, error_body(("10015", "Bad Request", "The request body must be a "
                                    "JSON object."))
        text = body.get("text")
        if not isinstance(text, str) or not text:
            return 422, error_body(MISSING, pointer="/text")
        to = e164(body.get("to"))
        if to is None:
            return 422, error_body(INVALID_TO, pointer="/to")
        sender = e164(body.get("from"))
        profile = body.get("messaging_profile_id")
        if sender is None and not profile:
            return 422, error_body(INVALID_FROM, pointer="/from")
        if profile is not None and profile != self.profile_id:
            return 422, error_body(("40305", "Invalid 'from' address",
                                    "The messaging profile is not this account's."),
                                   pointer="/messaging_profile_id")
        if sender is not None and self.numbers and sender not in self.numbers:
            return 422, error_body(INVALID_FROM, pointer="/from")
        if to in self.opted_out:
            # Undocumented: the HTTP status of a 40300 at create time; 422 as the other
            # validation refusals.
            return 422, error_body(OPTED_OUT, pointer="/to")
        record = self._record(str(uuid.uuid4()), sender or "+15550000000", to, text,
                              self.profile_id)
        self.sent_messages.append(record)
        self._follow_up(record["id"])
        return 200, {"data": record}

    def _record(self, message_id: str, sender: str, to: str, text: str,
                profile: str) -> JsonDict:
        return {
            "record_type": "message", "direction": "outbound", "id": message_id,
            "type": "SMS", "messaging_profile_id": profile,
            "organization_id": self.organization_id,
            "from": {"phone_number": sender, "carrier": "Telnyx", "line_type": "Wireless"},
            "to": [{"phone_number": to, "status": "queued", "carrier": "T-Mobile USA",
                    "line_type": "Wireless"}],
            "cc": [], "text": text, "subject": None, "media": [],
            "webhook_url": self.webhook_url, "webhook_failover_url": None,
            "encoding": "GSM-7", "parts": message_parts(text) if text else 1, "tags": [],
            "cost": None, "received_at": now_iso(), "sent_at": None, "completed_at": None,
            "valid_until": None, "errors": [],
        }

    def _profile(self) -> JsonDict:
        return {"record_type": "messaging_profile", "id": self.profile_id,
                "name": self.profile_name, "enabled": True, "webhook_url": self.webhook_url,
                "webhook_failover_url": None, "webhook_api_version": "2",
                "whitelisted_destinations": ["US", "CA"], "created_at": now_iso(),
                "updated_at": now_iso()}

    # ---- /_sim/ controls -----------------------------------------------------------------

    def control_routes(self) -> dict[tuple[str, str], ControlHandler]:
        return {
            **self.carrier_controls(),
            ("GET", "/_sim/requests"): self._ctl_requests,
            ("GET", "/_sim/public_key"): self._ctl_public_key,
            ("POST", "/_sim/fail"): self._ctl_fail,
            ("POST", "/_sim/config"): self._ctl_config,
            ("POST", "/_sim/inbound"): self._ctl_inbound,
            ("POST", "/_sim/receipt"): self._ctl_receipt,
        }

    async def _ctl_requests(self, request: web.Request) -> web.StreamResponse:
        """List the API requests received (the Authorization header masked)."""
        return json_response(200, {"requests": [
            {"method": r.method, "path": r.path, "status": r.status, "fault": r.fault,
             "body": r.body} for r in self.requests]})

    async def _ctl_public_key(self, request: web.Request) -> web.StreamResponse:
        """The public key the pushed webhooks are signed with (TELNYX_PUBLIC_KEY)."""
        return json_response(200, {"public_key": self.public_key})

    async def _ctl_fail(self, request: web.Request) -> web.StreamResponse:
        """Queue faults: {"kind", "count", "reset", "delay"}."""
        args = await control_json(request)
        try:
            kind: FaultKind = args["kind"] if args.get("kind") in _FAULT_KINDS else "500"
            if args.get("kind") not in _FAULT_KINDS:
                raise ValueError(f"kind must be one of {list(_FAULT_KINDS)}")
            self.fail_next(kind, int(args.get("count", 1)),
                           reset=int(args.get("reset", 1)), delay=float(args.get("delay", 0)))
        except (TypeError, ValueError) as error:
            return json_response(400, {"error": str(error)})
        return json_response(200, {"ok": True})

    async def _ctl_config(self, request: web.Request) -> web.StreamResponse:
        """Set {"webhook_url", "final_status", "rate_limit"}."""
        args = await control_json(request)
        if "webhook_url" in args:
            self.webhook_url = args["webhook_url"] or None
        if "final_status" in args:
            if args["final_status"] not in FINAL_STATUSES:
                return json_response(400, {"error": f"final_status: one of {FINAL_STATUSES}"})
            self.final_status = args["final_status"]
        if "rate_limit" in args:
            self.rate_limit = int(args["rate_limit"])
        return json_response(200, {"ok": True})

    async def _ctl_inbound(self, request: web.Request) -> web.StreamResponse:
        """Push a signed `message.received`: {"url", "from", "to", "text"}."""
        args = await control_json(request)
        return await relay(self.push_inbound(str(args["url"]), str(args["from"]),
                                             str(args["to"]), str(args.get("text", ""))))

    async def _ctl_receipt(self, request: web.Request) -> web.StreamResponse:
        """Push a signed receipt: {"url", "message_id", "status"}."""
        args = await control_json(request)
        return await relay(self.push_receipt(str(args["url"]), str(args["message_id"]),
                                             str(args.get("status", "delivered"))))


async def serve_forever(host: str, port: int, api_key: str, *,
                        webhook_url: str | None = None) -> None:
    """Run a simulator with one API key until cancelled (`pbxsms telnyx simulator`)."""
    sim = TelnyxSimulator([api_key], webhook_url=webhook_url)
    url = await sim.start(host, port)
    print(f"Telnyx simulator on {url}; control API at {url}/_sim/")
    print(f"Point a gateway at it with TELNYX_BASE_URL={url} TELNYX_PUBLIC_KEY={sim.public_key}"
          f" TELNYX_MESSAGING_PROFILE_ID={sim.profile_id}", flush=True)
    await sim.serve_until_cancelled()
