"""The mobile-app simulator: the API the gateway pushes to (faults, authentication, the
inbox) and the app side posting to the gateway's webhook, behind one aiohttp server; and the
`pbxsms mobileapp simulator` runner."""

from __future__ import annotations

import contextlib
import hmac
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web
from yarl import URL

from pbxsms.sim.mobileapp.controls import MobileAppControls
from pbxsms.sim.mobileapp.inbox import (
    FAULT_KINDS,
    INTERNAL_ERROR,
    Fault,
    FaultKind,
    Push,
    RecordedRequest,
    accept_call,
    rpc_error,
)
from pbxsms.sim.server import (
    ControlHandler,
    FaultPlan,
    JsonDict,
    SimulatedService,
    answered,
    check_fault_kind,
    drop_connection,
    json_response,
)


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
        self.controls = MobileAppControls(self)

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
        check_fault_kind(kind, FAULT_KINDS)
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
            return self._finish(rec, rpc_error(INTERNAL_ERROR, fault.message))
        return self._finish(rec, accept_call(rec.body, parsed, self.users, self.pushes))

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

    # ---- control API ---------------------------------------------------------------------

    def control_routes(self) -> dict[tuple[str, str], ControlHandler]:
        return self.controls.routes()


def create_app(sim: MobileAppSimulator) -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", sim.handle)
    return app


async def serve_forever(host: str, port: int, token: str) -> None:
    """Run a simulator until cancelled (for a `pbxsms mobileapp simulator` command)."""
    sim = MobileAppSimulator(token)
    url = await sim.start(host, port)
    print(f"Mobile-app API simulator on {url}/ (Bearer token required); control at {url}/_sim/")
    await sim.serve_until_cancelled()
