"""A local stand-in for a Ringotel-style mobile-app messaging API, for tests and demos.

The gateway pushes an inbound SMS into an extension's app with
``POST <api url>`` + ``Authorization: Bearer <token>`` and the JSON-RPC-style body
``{"method":"message","params":{"orgid","from","to","content","type"}}``; success is
``{"result":{"messageid":...}}`` and failures come back as ``{"error":{"code","message"}}``
with HTTP 200 (FS PBX only looks at ``result.messageid`` / ``error.message``).

The app side is simulated too: `reply()` and `delivered()` post what Ringotel posts to the
PBX webhook. The unauthenticated control API lives under ``/_sim/`` (listed at
``GET /_sim/``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from aiohttp import web
from yarl import URL

from pbxsms.sim.server import (
    ControlError,
    ControlHandler,
    FaultPlan,
    JsonDict,
    SimulatedService,
    answered,
    check_fault_kind,
    control_json,
    drop_connection,
    fault_kind,
    json_response,
    ok,
    relay,
)

__all__ = [
    "FaultKind",
    "MobileAppSimulator",
    "Push",
    "RecordedRequest",
    "WebhookResult",
    "create_app",
    "serve_forever",
]

FaultKind = Literal["500", "error", "delay", "drop"]
_FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)

# JSON-RPC 2.0 codes; Ringotel's own codes are undocumented.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


def _rpc_error(code: int, message: str) -> web.Response:
    return json_response(200, {"error": {"code": code, "message": message}})


@dataclass
class Push:
    """One message accepted into an app user's inbox."""

    messageid: str
    orgid: str
    from_: str
    to: str
    content: str
    type: int
    received_at: float = field(default_factory=time.time)

    def as_json(self) -> JsonDict:
        data = asdict(self)
        data["from"] = data.pop("from_")
        return data


@dataclass
class RecordedRequest:
    """Every API call, accepted or not; `status` is None when the connection was dropped."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any = None
    status: int | None = None
    fault: str | None = None
    response: Any = None
    received_at: float = field(default_factory=time.time)


@dataclass
class Fault:
    kind: FaultKind
    delay: float = 0.0
    message: str = "Internal error"


@dataclass
class WebhookResult:
    """The gateway's answer to a simulated app webhook, and exactly what was posted."""

    status: int
    body: str
    url: str
    payload: JsonDict


class MobileAppSimulator(SimulatedService):
    """In-memory mobile-app API: records pushes, injects faults and talks back to a gateway.

    With no users registered any orgid/extension is accepted; after `add_user()` unknown ones
    get an `error` answer, which is how a misconfigured org looks from the gateway.
    """

    def __init__(
        self,
        token: str,
        *,
        api_path: str | None = None,
        users: Iterable[tuple[str, str]] = (),
        push_timeout: float = 10.0,
    ) -> None:
        self.token = token
        # None accepts POST on any path, so "https://host/api" and ".../api/" both work.
        self.api_path = api_path
        super().__init__(push_timeout)
        self.users: set[tuple[str, str]] = set(users)
        self.pushes: list[Push] = []
        self.requests: list[RecordedRequest] = []
        self.fault_plan: FaultPlan[Fault] = FaultPlan()

    @property
    def faults(self) -> list[Fault]:
        """Faults queued for the next calls."""
        return self.fault_plan.queued

    @property
    def always(self) -> Fault | None:
        """The fault every call gets, if any."""
        return self.fault_plan.always

    # ---- configuration -------------------------------------------------------------------

    def add_user(self, orgid: str, extension: str) -> None:
        self.users.add((orgid, extension))

    def fail_next(
        self,
        kind: FaultKind,
        count: int = 1,
        *,
        delay: float = 0.0,
        message: str = "Internal error",
    ) -> None:
        """Make the next `count` calls misbehave: HTTP 500, an `error` body, a delay (then a
        normal answer) or a connection closed without an answer."""
        self.faults.extend(self._fault(kind, delay, message) for _ in range(count))

    def fail_always(
        self, kind: FaultKind | None, *, delay: float = 0.0, message: str = "Internal error"
    ) -> None:
        """Make every call misbehave until called again with None."""
        self.fault_plan.always = None if kind is None else self._fault(kind, delay, message)

    @staticmethod
    def _fault(kind: FaultKind, delay: float, message: str) -> Fault:
        check_fault_kind(kind, _FAULT_KINDS)
        return Fault(kind=kind, delay=delay, message=message)

    def reset(self) -> None:
        """Forget pushes, requests and faults; keep token and users."""
        self.pushes.clear()
        self.requests.clear()
        self.fault_plan.clear()

    # ---- lifecycle -----------------------------------------------------------------------

    def create_app(self) -> web.Application:
        return create_app(self)

    @property
    def api_url(self) -> str:
        """The URL the gateway should be configured with."""
        return self.base_url + (self.api_path or "/")

    # ---- the app talking to the gateway --------------------------------------------------

    async def reply(
        self,
        url: str,
        token: str | None,
        from_extension: str,
        to: str,
        content: str,
        orgid: str,
        *,
        messageid: str | None = None,
        type: int | None = None,
    ) -> WebhookResult:
        """Post an app user's outgoing message (`method=message`) to the gateway webhook."""
        params: JsonDict = {
            "from": from_extension,
            "to": to,
            "content": content,
            "orgid": orgid,
            "messageid": messageid or str(uuid.uuid4()),
        }
        if type is not None:
            params["type"] = type  # 2 marks a media URL in content
        return await self._post(url, token, {"method": "message", "params": params})

    async def delivered(
        self, url: str, token: str | None, messageid: str, *, orgid: str | None = None
    ) -> WebhookResult:
        """Post a `method=delivered` notice for `messageid` to the gateway webhook."""
        params: JsonDict = {"messageid": messageid}
        if orgid is not None:
            params["orgid"] = orgid
        return await self._post(url, token, {"method": "delivered", "params": params})

    async def _post(self, url: str, token: str | None, payload: JsonDict) -> WebhookResult:
        target = str(URL(url).update_query(token=token)) if token is not None else url
        async with self.session.post(target, json=payload) as resp:
            return WebhookResult(
                status=resp.status, body=await resp.text(), url=target, payload=payload
            )

    # ---- HTTP ----------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/_sim/"):
            return await self.control(request)
        wanted = self.api_path
        if request.method != "POST" or (
            wanted is not None and request.path.rstrip("/") != wanted.rstrip("/")
        ):
            return json_response(404, {"error": {"code": 404, "message": "Not found"}})
        return await self._api(request)

    async def _api(self, request: web.Request) -> web.StreamResponse:
        rec = RecordedRequest(request.method, request.path, dict(request.headers))
        self.requests.append(rec)
        fault = self.fault_plan.take()
        if fault is not None:
            rec.fault = fault.kind
            if fault.kind == "drop":
                return drop_connection(request)

        raw = await request.text()
        parsed = True
        try:
            rec.body = json.loads(raw)
        except ValueError:
            rec.body, parsed = raw, False

        if fault is not None and fault.kind == "delay":
            # The body is in before the delay, so a client that times out has still sent it.
            await self.pause(fault.delay)
        if fault is not None and fault.kind == "500":
            return self._finish(rec, json_response(500, {"error": "Internal Server Error"}))
        if not self._authorised(request.headers.get("Authorization")):
            error = {"error": {"code": 401, "message": "Unauthorized"}}
            return self._finish(rec, json_response(401, error))
        if fault is not None and fault.kind == "error":
            return self._finish(rec, _rpc_error(INTERNAL_ERROR, fault.message))
        return self._finish(rec, self._call(rec.body, parsed))

    @staticmethod
    def _finish(rec: RecordedRequest, response: web.Response) -> web.Response:
        with contextlib.suppress(ValueError):
            rec.response = json.loads(response.text or "null")
        return answered(rec, response)

    def _authorised(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self.token.encode()
        )

    def _call(self, body: Any, parsed: bool) -> web.Response:
        if not parsed:
            return _rpc_error(PARSE_ERROR, "Parse error")
        if not isinstance(body, dict) or not isinstance(body.get("method"), str):
            return _rpc_error(INVALID_REQUEST, "Invalid request: 'method' is required")
        if body["method"] != "message":
            return _rpc_error(METHOD_NOT_FOUND, f"Method not found: {body['method']}")
        params = body.get("params")
        if not isinstance(params, dict):
            return _rpc_error(INVALID_PARAMS, "Invalid params: 'params' must be an object")
        for name in ("orgid", "from", "to", "content"):
            value = params.get(name)
            if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
                return _rpc_error(INVALID_PARAMS, f"Invalid params: '{name}' is required")
        kind = params.get("type", 1)
        if not isinstance(kind, int) or isinstance(kind, bool):
            return _rpc_error(INVALID_PARAMS, "Invalid params: 'type' must be an integer")
        orgid, to = str(params["orgid"]), str(params["to"])
        if self.users and not any(org == orgid for org, _ in self.users):
            return _rpc_error(INVALID_PARAMS, f"Organization not found: {orgid}")
        if self.users and (orgid, to) not in self.users:
            return _rpc_error(INVALID_PARAMS, f"User not found: {to}")
        push = Push(
            messageid=uuid.uuid4().hex,
            orgid=orgid,
            from_=str(params["from"]),
            to=to,
            content=str(params["content"]),
            type=kind,
        )
        self.pushes.append(push)
        return json_response(200, {"result": {"messageid": push.messageid}})

    # ---- control API ---------------------------------------------------------------------

    def control_routes(self) -> dict[tuple[str, str], ControlHandler]:
        return {
            ("GET", "/_sim/pushes"): self._ctl_pushes,
            ("GET", "/_sim/requests"): self._ctl_requests,
            ("POST", "/_sim/reset"): self._ctl_reset,
            ("POST", "/_sim/fail"): self._ctl_fail,
            ("POST", "/_sim/fail_always"): self._ctl_fail_always,
            ("POST", "/_sim/users"): self._ctl_users,
            ("POST", "/_sim/reply"): self._ctl_reply,
            ("POST", "/_sim/delivered"): self._ctl_delivered,
        }

    async def _ctl_pushes(self, request: web.Request) -> web.StreamResponse:
        """The messages pushed into app users' inboxes so far."""
        return json_response(200, {"pushes": [p.as_json() for p in self.pushes]})

    async def _ctl_requests(self, request: web.Request) -> web.StreamResponse:
        """Every API call, with headers, body, answer and injected fault."""
        return json_response(200, {"requests": [asdict(r) for r in self.requests]})

    async def _ctl_reset(self, request: web.Request) -> web.StreamResponse:
        """Forget pushes, requests and faults; keep token and users."""
        self.reset()
        return ok()

    async def _ctl_fail(self, request: web.Request) -> web.StreamResponse:
        """Misbehave (500, error, delay, drop) for the next calls."""
        args = await control_json(request)
        kind = fault_kind(args, _FAULT_KINDS)
        try:
            self.fail_next(
                kind,
                int(args.get("count", 1)),
                delay=float(args.get("delay", 0.0)),
                message=str(args.get("message", "Internal error")),
            )
        except (TypeError, ValueError) as exc:
            raise ControlError(str(exc)) from exc
        return ok(queued=len(self.faults))

    async def _ctl_fail_always(self, request: web.Request) -> web.StreamResponse:
        """Misbehave on every call until told otherwise (kind null)."""
        args = await control_json(request)
        kind = fault_kind(args, _FAULT_KINDS, allow_none=True)
        try:
            self.fail_always(
                kind,
                delay=float(args.get("delay", 0.0)),
                message=str(args.get("message", "Internal error")),
            )
        except (TypeError, ValueError) as exc:
            raise ControlError(str(exc)) from exc
        return ok()

    async def _ctl_users(self, request: web.Request) -> web.StreamResponse:
        """Register an app user; once any is, only registered ones are accepted."""
        args = await control_json(request)
        orgid, extension = args.get("orgid"), args.get("extension")
        if not isinstance(orgid, str) or not isinstance(extension, str):
            raise ControlError("expected orgid and extension strings")
        self.add_user(orgid, extension)
        return ok()

    async def _ctl_reply(self, request: web.Request) -> web.StreamResponse:
        """Make an app user reply through the gateway's webhook."""
        args = await control_json(request)
        fields = [args.get(k) for k in ("url", "from", "to", "content", "orgid")]
        if not all(isinstance(v, str) for v in fields):
            raise ControlError("expected url, from, to, content, orgid")
        url, from_, to, content, orgid = (str(v) for v in fields)
        return await relay(
            self.reply(
                url,
                args.get("token"),
                from_,
                to,
                content,
                orgid,
                messageid=args.get("messageid"),
                type=args.get("type"),
            )
        )

    async def _ctl_delivered(self, request: web.Request) -> web.StreamResponse:
        """Make the app confirm a push through the gateway's webhook."""
        args = await control_json(request)
        url, messageid = args.get("url"), args.get("messageid")
        if not isinstance(url, str) or not isinstance(messageid, str):
            raise ControlError("expected url and messageid strings")
        return await relay(
            self.delivered(url, args.get("token"), messageid, orgid=args.get("orgid"))
        )


def create_app(sim: MobileAppSimulator) -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", sim.handle)
    return app


async def serve_forever(host: str, port: int, token: str) -> None:
    """Run a simulator until cancelled (for a `pbxsms mobileapp simulator` command)."""
    sim = MobileAppSimulator(token)
    url = await sim.start(host, port)
    print(f"Mobile-app API simulator on {url}/ (Bearer token required); control at {url}/_sim/")
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()
