"""Fixtures of the media tests: the app simulator, a real SMTP server, ClickSend's."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pbxsms.sim.clicksend import ClickSendSimulator
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.delivery.support import APP_TOKEN, SmtpServer
from tests.helpers import free_port


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


@pytest.fixture
async def clicksend() -> AsyncIterator[ClickSendSimulator]:
    async with ClickSendSimulator() as simulator:
        simulator.add_account("pbx-user", "pbx-key")
        yield simulator
