"""An in-process gateway as tests hold it: the server, its runtime and its base URL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pbxsms.core.serve.server import Server


class Gateway:
    """An in-process `pbxsms serve` (same code path) with its base URL."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.runtime = server.runtime
        self.url = f"http://127.0.0.1:{server.port}"


# The `start_gateway` fixture's type: `await start_gateway(toml=..., env=..., plugins=...)`.
StartGateway = Callable[..., Awaitable[Gateway]]
