"""Telnyx fixtures: its simulator, the mobile-app simulator and a real SMTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pbxsms.sim.mobileapp import MobileAppSimulator
from pbxsms.sim.telnyx import TelnyxSimulator
from tests.delivery.support import APP_TOKEN, SmtpServer
from tests.helpers import free_port
from tests.telnyx.support import API_KEY


@pytest.fixture
async def telnyx() -> AsyncIterator[TelnyxSimulator]:
    async with TelnyxSimulator([API_KEY]) as simulator:
        yield simulator


@pytest.fixture
async def app() -> AsyncIterator[MobileAppSimulator]:
    async with MobileAppSimulator(APP_TOKEN) as simulator:
        yield simulator


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    server = SmtpServer(free_port())
    await server.start()
    yield server
    await server.stop()
