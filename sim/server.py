"""What the simulators of remote services share: an aiohttp server on loopback, a client
session for what they push to a gateway, an interruptible wait for "delay" faults, and the
plumbing of their `/_sim/` control API (routes listed at `GET /_sim/`, arguments parsed,
refusals answered, faults queued, requests recorded)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Generic, Protocol, Self, TypeVar

from aiohttp import ClientError, ClientSession, ClientTimeout, web

JsonDict = dict[str, Any]
ControlHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LISTING_PATH = "/_sim/"


def json_response(status: int, body: Any,
                  headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )


class ControlError(Exception):
    """A control call the simulator refuses: answered 400 `{"error": message}`."""


async def control_json(request: web.Request) -> JsonDict:
    """The JSON object of a control call; a `ControlError` otherwise."""
    try:
        args = await request.json()
    except ValueError:
        args = None
    if not isinstance(args, dict):
        raise ControlError("expected a JSON object")
    return args


def fault_kind(args: JsonDict, kinds: tuple[str, ...], *, allow_none: bool = False) -> Any:
    """The `kind` of a fault control call, one of `kinds` (or None when allowed)."""
    kind = args.get("kind")
    if kind is None and allow_none:
        return None
    if kind not in kinds:
        prefix = "null or one of" if allow_none else "one of"
        raise ControlError(f"kind must be {prefix} {list(kinds)}")
    return kind


class GatewayAnswer(Protocol):
    """What a simulator got back from the gateway it pushed to."""

    status: int
    body: str
    url: str


async def relay(call: Awaitable[GatewayAnswer]) -> web.Response:
    """Report the gateway's answer to a control call; 502 when the gateway is unreachable."""
    try:
        result = await call
    except (ClientError, TimeoutError) as exc:
        return json_response(502, {"error": f"{type(exc).__name__}: {exc}"})
    return json_response(200, {"status": result.status, "body": result.body, "url": result.url})


def ok(**extra: Any) -> web.Response:
    """The answer of a control call that did what it was asked."""
    return json_response(200, {"ok": True, **extra})


F = TypeVar("F")


class FaultPlan(Generic[F]):
    """Misbehaviours queued for the next calls, and one to repeat until withdrawn."""

    def __init__(self) -> None:
        self.queued: list[F] = []
        self.always: F | None = None

    def take(self, applies: Callable[[F], bool] = lambda _: True) -> F | None:
        """The first queued fault that applies to this call (removed), else `always`."""
        for i, fault in enumerate(self.queued):
            if applies(fault):
                return self.queued.pop(i)
        return self.always

    def clear(self) -> None:
        self.queued.clear()
        self.always = None


def check_fault_kind(kind: str, kinds: tuple[str, ...]) -> None:
    """A programmatic fault of an unknown kind is a mistake in the caller."""
    if kind not in kinds:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {kinds}")


def drop_connection(request: web.Request) -> web.Response:
    """Close the connection without an answer (a "drop" fault)."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)  # never reaches the client


class Answered(Protocol):
    """A recorded request: its answer's status (None while unanswered or dropped)."""

    status: int | None


R = TypeVar("R", bound=Answered)
S = TypeVar("S", bound=web.StreamResponse)


def answered(rec: R, response: S) -> S:
    """Note on the recorded request what it was answered, and return the answer."""
    rec.status = response.status
    return response


def control_summary(handler: ControlHandler) -> str:
    """What a control does: the first line of its handler's docstring."""
    return (inspect.getdoc(handler) or "").partition("\n")[0]


class SimulatedService:
    """Lifecycle of a simulator; subclasses say what it serves in `create_app` and which
    controls it offers in `control_routes` (each handler's docstring says what it does)."""

    def __init__(self, push_timeout: float = 10.0) -> None:
        self.push_timeout = push_timeout
        self._base_url: str | None = None
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self._stopping = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()

    def create_app(self) -> web.Application:
        raise NotImplementedError

    def control_routes(self) -> dict[tuple[str, str], ControlHandler]:
        """`(method, path)` → handler of the `/_sim/` control API."""
        return {}

    def control_listing(self) -> list[JsonDict]:
        """Every control as `GET /_sim/` lists it: method, path and what it does."""
        routes = {("GET", LISTING_PATH): self._list_controls, **self.control_routes()}
        return [
            {"method": method, "path": path, "summary": control_summary(handler)}
            for (method, path), handler in routes.items()
        ]

    async def _list_controls(self, request: web.Request) -> web.StreamResponse:
        """List the controls of this simulator."""
        return json_response(200, {"controls": self.control_listing()})

    async def control(self, request: web.Request) -> web.StreamResponse:
        """Dispatch a `/_sim/` call; a refused or malformed call is answered 400."""
        if (request.method, request.path) == ("GET", LISTING_PATH):
            return await self._list_controls(request)
        handler = self.control_routes().get((request.method, request.path))
        if handler is None:
            return json_response(404, {"error": "unknown control endpoint"})
        try:
            return await handler(request)
        except ControlError as exc:
            return json_response(400, {"error": str(exc)})

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0 picks a free port) and return the base URL."""
        self._stopping.clear()
        self._runner = web.AppRunner(self.create_app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound_port = self._runner.addresses[0][1]
        shown = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104
        shown = f"[{shown}]" if ":" in shown else shown
        self._base_url = f"http://{shown}:{bound_port}"
        return self._base_url

    @property
    def base_url(self) -> str:
        """`http://host:port` of the running simulator."""
        if self._base_url is None:
            raise RuntimeError("simulator not started")
        return self._base_url

    async def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a "delay" fault
        for task in list(self._background):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def session(self) -> ClientSession:
        """The client for pushes to a gateway, made on first use."""
        if self._session is None:
            self._session = ClientSession(timeout=ClientTimeout(total=self.push_timeout))
        return self._session

    async def serve_until_cancelled(self) -> None:
        """Wait, serving, until the task is cancelled (a `pbxsms ... simulator` command);
        then stop."""
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    def in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` (pushes that follow an answer, as a carrier's do) until it ends or
        the simulator stops."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def pause(self, seconds: float) -> None:
        """Sleep for a "delay" fault, cut short when the simulator stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
