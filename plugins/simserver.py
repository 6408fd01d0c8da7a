"""What the simulators of remote services share: an aiohttp server on loopback, a client
session for what they push to a gateway, and an interruptible wait for "delay" faults."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Self

from aiohttp import ClientSession, ClientTimeout, web


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
