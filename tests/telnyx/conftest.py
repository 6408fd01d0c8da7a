"""Telnyx fixtures: its simulator (the app and SMTP fixtures are the suite's)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pbxsms.sim.telnyx import TelnyxSimulator
from tests.support.telnyx import API_KEY


@pytest.fixture
async def telnyx() -> AsyncIterator[TelnyxSimulator]:
    async with TelnyxSimulator([API_KEY]) as simulator:
        yield simulator
