"""Fixtures of the media tests: ClickSend's simulator (the app and SMTP are shared)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pbxsms.sim.clicksend import ClickSendSimulator


@pytest.fixture
async def clicksend() -> AsyncIterator[ClickSendSimulator]:
    async with ClickSendSimulator() as simulator:
        simulator.add_account("pbx-user", "pbx-key")
        yield simulator
