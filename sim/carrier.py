"""What the Telnyx and Bandwidth simulators share: the requests they recorded, the messages
they took, the numbers that opted out, queued faults acted out before an answer, and the
`/_sim/` controls over them. Each carrier's own shapes stay in its module."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import phonenumbers
from aiohttp import web

from pbxsms.sim.server import (
    ControlHandler,
    GatewayAnswer,
    JsonDict,
    SimulatedService,
    control_json,
    drop_connection,
    json_response,
)


def now_iso() -> str:
    """Now as the carriers write it: UTC, milliseconds, `Z`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def e164(value: object) -> str | None:
    """`value` as an E.164 number if it is one written with its `+`, else None."""
    if not isinstance(value, str) or not value.startswith("+"):
        return None
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@dataclass
class RecordedRequest:
    """One request to the carrier's API. `status` is None when the connection was dropped."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any = None
    status: int | None = None
    fault: str | None = None
    received_at: float = field(default_factory=time.time)

    @property
    def authorization(self) -> str | None:
        return self.headers.get("Authorization")


class Fault(Protocol):
    """A queued misbehaviour: its kind, and how long a "delay" waits."""

    kind: Any
    delay: float


F = TypeVar("F", bound=Fault)


class CarrierSimulator(SimulatedService, Generic[F]):
    """A carrier's state besides its own shapes; subclasses answer the API."""

    def __init__(self, push_timeout: float = 10.0) -> None:
        super().__init__(push_timeout)
        self.requests: list[RecordedRequest] = []
        self.sent_messages: list[JsonDict] = []
        self.opted_out: set[str] = set()
        self.faults: list[F] = []

    def opt_out(self, number: str, opted_out: bool = True) -> None:
        """A recipient who replied STOP (or, with False, started again); what a send to it
        gets is the carrier's (see its simulator)."""
        (self.opted_out.add if opted_out else self.opted_out.discard)(number)

    def reset(self) -> None:
        self.requests.clear()
        self.sent_messages.clear()
        self.faults.clear()

    def record(self, request: web.Request, body: Any) -> RecordedRequest:
        rec = RecordedRequest(request.method, request.path, dict(request.headers), body)
        self.requests.append(rec)
        return rec

    @staticmethod
    def json_body(raw: bytes) -> Any:
        """A request body as JSON, or its text when it is not JSON (recorded as sent)."""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode(errors="replace")

    async def take_fault(self, request: web.Request, rec: RecordedRequest,
                         send: bool) -> tuple[F | None, web.Response | None]:
        """The next queued fault of a send, noted on `rec`, with the transport's part acted
        out: a "drop" closes the connection (the answer it gives is never read), a "delay"
        waits. The rest of the fault is the carrier's to answer."""
        fault = self.faults.pop(0) if send and self.faults else None
        rec.fault = fault.kind if fault else None
        if fault is not None and fault.kind == "drop":
            return fault, drop_connection(request)
        if fault is not None and fault.kind == "delay":
            await self.pause(fault.delay)
        return fault, None

    async def push_until_taken(self, push: Callable[[], Awaitable[GatewayAnswer]],
                               attempts: int) -> None:
        """Push a webhook until the gateway answers 2xx, `attempts` times at most, half a
        second apart (carriers retry what a gateway did not take)."""
        for _attempt in range(attempts):
            try:
                result = await push()
            except Exception:  # the gateway is down: try again
                await self.pause(0.5)
                continue
            if 200 <= result.status < 300:
                return
            await self.pause(0.5)

    def carrier_controls(self) -> dict[tuple[str, str], ControlHandler]:
        """The controls every carrier simulator offers."""
        return {
            ("GET", "/_sim/messages"): self._ctl_messages,
            ("POST", "/_sim/reset"): self._ctl_reset,
            ("POST", "/_sim/opt_out"): self._ctl_opt_out,
        }

    async def _ctl_messages(self, request: web.Request) -> web.StreamResponse:
        """List the messages sent."""
        return json_response(200, {"messages": self.sent_messages})

    async def _ctl_reset(self, request: web.Request) -> web.StreamResponse:
        """Forget traffic and queued faults."""
        self.reset()
        return json_response(200, {"ok": True})

    async def _ctl_opt_out(self, request: web.Request) -> web.StreamResponse:
        """Opt a number out (or back in): {"number", "opted_out": true}."""
        args = await control_json(request)
        number = e164(args.get("number"))
        if number is None:
            return json_response(400, {"error": "number must be E.164"})
        self.opt_out(number, bool(args.get("opted_out", True)))
        return json_response(200, {"ok": True})
