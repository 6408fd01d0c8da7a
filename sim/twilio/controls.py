"""The Twilio simulator's `/_sim/` control API: inspect messages and calls, queue faults,
add the account's numbers, and push inbound messages and status callbacks to a gateway."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from aiohttp import web

from pbxsms.sim.server import (
    ControlError,
    ControlHandler,
    control_json,
    fault_kind,
    json_response,
    ok,
    relay,
)
from pbxsms.sim.twilio.shapes import FAULT_KINDS

if TYPE_CHECKING:
    from pbxsms.sim.twilio.simulator import TwilioSimulator


class TwilioControls:
    """The control handlers of one simulator; each docstring's first line is its summary."""

    def __init__(self, sim: TwilioSimulator) -> None:
        self.sim = sim

    def routes(self) -> dict[tuple[str, str], ControlHandler]:
        return {
            ("GET", "/_sim/messages"): self.messages,
            ("GET", "/_sim/requests"): self.requests,
            ("POST", "/_sim/reset"): self.reset,
            ("POST", "/_sim/fail"): self.fail,
            ("POST", "/_sim/numbers"): self.numbers,
            ("POST", "/_sim/inbound"): self.inbound,
            ("POST", "/_sim/status"): self.status,
        }

    async def messages(self, request: web.Request) -> web.StreamResponse:
        """Every message, sent and received, oldest first (message resources)."""
        return json_response(200, {"messages": self.sim.messages})

    async def requests(self, request: web.Request) -> web.StreamResponse:
        """Every API call: method, path, query, form, answer and injected fault."""
        return json_response(200, {"requests": [asdict(r) for r in self.sim.requests]})

    async def reset(self, request: web.Request) -> web.StreamResponse:
        """Forget messages, calls, faults and pushes; keep the account and its numbers."""
        self.sim.reset()
        return ok()

    async def fail(self, request: web.Request) -> web.StreamResponse:
        """Misbehave (429, 500, 503, store_then_500, drop, delay) on the next sends."""
        args = await control_json(request)
        kind = fault_kind(args, FAULT_KINDS)
        try:
            self.sim.fail_next(kind, int(args.get("count", 1)),
                               retry_after=int(args.get("retry_after", 1)),
                               delay=float(args.get("delay", 0.0)))
        except (TypeError, ValueError) as exc:
            raise ControlError(str(exc)) from exc
        return ok(queued=len(self.sim.faults.queued))

    async def numbers(self, request: web.Request) -> web.StreamResponse:
        """Add a number to the account, with its inbound webhook URL."""
        args = await control_json(request)
        number, url = args.get("number"), args.get("sms_url", "")
        if not isinstance(number, str) or not isinstance(url, str):
            raise ControlError("expected a number string and an optional sms_url string")
        return json_response(200, self.sim.add_number(number, url,
                                                      str(args.get("sms_method", "POST"))))

    async def inbound(self, request: web.Request) -> web.StreamResponse:
        """Post an inbound message to a gateway's webhook, signed."""
        args = await control_json(request)
        url, from_, to, body = (args.get(k) for k in ("url", "from", "to", "body"))
        if not all(isinstance(v, str) for v in (url, from_, to, body)):
            raise ControlError("expected url, from, to and body strings")
        return await relay(self.sim.push_inbound(str(url), str(from_), str(to), str(body),
                                                 sid=args.get("sid")))

    async def status(self, request: web.Request) -> web.StreamResponse:
        """Post a sent message's status callback to its StatusCallback, signed."""
        args = await control_json(request)
        sid, status = args.get("sid"), args.get("status")
        if not isinstance(sid, str) or not isinstance(status, str):
            raise ControlError("expected sid and status strings")
        code = args.get("error_code")
        try:
            call = self.sim.push_status(sid, status, error_code=int(code) if code else None)
        except (TypeError, ValueError) as exc:
            raise ControlError(str(exc)) from exc
        try:
            return await relay(call)
        except (KeyError, ValueError) as exc:
            raise ControlError(str(exc).strip("'")) from exc
