"""What the simulators of remote services share: an aiohttp server on loopback, a client
session for what they push to a gateway, an interruptible wait for "delay" faults, and
the plumbing of their `/_sim/` control API."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, Self

from aiohttp import ClientError, ClientSession, ClientTimeout, web

JsonDict = dict[str, Any]
ControlHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(status: int, body: Any,
                  headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )


async def control_json(request: web.Request) -> JsonDict:
    """The JSON object of a control call; 400 otherwise."""
    try:
        args = await request.json()
    except ValueError:
        args = None
    if not isinstance(args, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "expected a JSON object"}), content_type="application/json"
        )
    return args


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


class SimulatedService:
    """Lifecycle of a simulator; subclasses say what it serves in `create_app`."""

    def __init__(self, push_timeout: float = 10.0) -> None:
        self.push_timeout = push_timeout
        self._base_url: str | None = None
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self._stopping = asyncio.Event()

    def create_app(self) -> web.Application:
        raise NotImplementedError

    def control_routes(self) -> dict[tuple[str, str], ControlHandler]:
        """`(method, path)` → handler of the `/_sim/` control API."""
        return {}

    async def control(self, request: web.Request) -> web.StreamResponse:
        """Dispatch a `/_sim/` call."""
        handler = self.control_routes().get((request.method, request.path))
        if handler is None:
            return json_response(404, {"error": "unknown control endpoint"})
        return await handler(request)

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

    async def pause(self, seconds: float) -> None:
        """Sleep for a "delay" fault, cut short when the simulator stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
