"""Bandwidth fixtures: its simulator, the mobile-app simulator and a real SMTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pbxsms.sim.bandwidth import BandwidthSimulator
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.bandwidth.support import simulator
from tests.delivery.support import APP_TOKEN, SmtpServer
from tests.helpers import free_port


@pytest.fixture
async def bandwidth() -> AsyncIterator[BandwidthSimulator]:
    async with simulator() as sim:
        yield sim


@pytest.fixture
async def app() -> AsyncIterator[MobileAppSimulator]:
    async with MobileAppSimulator(APP_TOKEN) as sim:
        yield sim


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    server = SmtpServer(free_port())
    await server.start()
    yield server
    await server.stop()
