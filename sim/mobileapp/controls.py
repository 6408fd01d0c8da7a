"""The mobile-app simulator's `/_sim/` control API: inspect pushes and calls, queue faults,
register users, and make the app reply or confirm through a gateway's webhook."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from aiohttp import web

from pbxsms.sim.mobileapp.inbox import FAULT_KINDS
from pbxsms.sim.server import (
    ControlError,
    ControlHandler,
    control_json,
    fault_kind,
    json_response,
    ok,
    relay,
)

if TYPE_CHECKING:
    from pbxsms.sim.mobileapp.simulator import MobileAppSimulator


class MobileAppControls:
    """The control handlers of one simulator; each docstring's first line is its summary."""

    def __init__(self, sim: MobileAppSimulator) -> None:
        self.sim = sim

    def routes(self) -> dict[tuple[str, str], ControlHandler]:
        return {
            ("GET", "/_sim/pushes"): self.pushes,
            ("GET", "/_sim/requests"): self.requests,
            ("POST", "/_sim/reset"): self.reset,
            ("POST", "/_sim/fail"): self.fail,
            ("POST", "/_sim/fail_always"): self.fail_always,
            ("POST", "/_sim/users"): self.users,
            ("POST", "/_sim/reply"): self.reply,
            ("POST", "/_sim/delivered"): self.delivered,
        }

    async def pushes(self, request: web.Request) -> web.StreamResponse:
        """The messages pushed into app users' inboxes so far."""
        return json_response(200, {"pushes": [p.as_json() for p in self.sim.pushes]})

    async def requests(self, request: web.Request) -> web.StreamResponse:
        """Every API call, with headers, body, answer and injected fault."""
        return json_response(200, {"requests": [asdict(r) for r in self.sim.requests]})

    async def reset(self, request: web.Request) -> web.StreamResponse:
        """Forget pushes, requests and faults; keep token and users."""
        self.sim.reset()
        return ok()

    async def fail(self, request: web.Request) -> web.StreamResponse:
        """Misbehave (500, error, delay, drop) for the next calls."""
        args = await control_json(request)
        kind = fault_kind(args, FAULT_KINDS)
        try:
            self.sim.fail_next(
                kind,
                int(args.get("count", 1)),
                delay=float(args.get("delay", 0.0)),
                message=str(args.get("message", "Internal error")),
            )
        except (TypeError, ValueError) as exc:
            raise ControlError(str(exc)) from exc
        return ok(queued=len(self.sim.faults))

    async def fail_always(self, request: web.Request) -> web.StreamResponse:
        """Misbehave on every call until told otherwise (kind null)."""
        args = await control_json(request)
        kind = fault_kind(args, FAULT_KINDS, allow_none=True)
        try:
            self.sim.fail_always(
                kind,
                delay=float(args.get("delay", 0.0)),
                message=str(args.get("message", "Internal error")),
            )
        except (TypeError, ValueError) as exc:
            raise ControlError(str(exc)) from exc
        return ok()

    async def users(self, request: web.Request) -> web.StreamResponse:
        """Register an app user; once any is, only registered ones are accepted."""
        args = await control_json(request)
        orgid, extension = args.get("orgid"), args.get("extension")
        if not isinstance(orgid, str) or not isinstance(extension, str):
            raise ControlError("expected orgid and extension strings")
        self.sim.add_user(orgid, extension)
        return ok()

    async def reply(self, request: web.Request) -> web.StreamResponse:
        """Make an app user reply through the gateway's webhook."""
        args = await control_json(request)
        fields = [args.get(k) for k in ("url", "from", "to", "content", "orgid")]
        if not all(isinstance(v, str) for v in fields):
            raise ControlError("expected url, from, to, content, orgid")
        url, from_, to, content, orgid = (str(v) for v in fields)
        return await relay(
            self.sim.reply(
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

    async def delivered(self, request: web.Request) -> web.StreamResponse:
        """Make the app confirm a push through the gateway's webhook."""
        args = await control_json(request)
        url, messageid = args.get("url"), args.get("messageid")
        if not isinstance(url, str) or not isinstance(messageid, str):
            raise ControlError("expected url and messageid strings")
        return await relay(
            self.sim.delivered(url, args.get("token"), messageid, orgid=args.get("orgid"))
        )
