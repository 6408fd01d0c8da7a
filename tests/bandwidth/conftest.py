"""Bandwidth fixtures: its simulator (the app and SMTP fixtures are the suite's)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pbxsms.sim.bandwidth import BandwidthSimulator
from tests.support.bandwidth import simulator


@pytest.fixture
async def bandwidth() -> AsyncIterator[BandwidthSimulator]:
    async with simulator() as sim:
        yield sim
