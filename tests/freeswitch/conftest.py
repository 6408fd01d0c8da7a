"""Fixtures of the FreeSWITCH tests: the strict fake event socket, the app simulator and a
real SMTP server (the other channels must keep delivering whatever SIP does)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pbxsms.sim.freeswitch import FakeFreeSwitch
from tests.delivery.conftest import app, smtp
from tests.freeswitch.support import ESL_PASSWORD

__all__ = ["app", "fake", "smtp"]


@pytest.fixture
async def fake() -> AsyncIterator[FakeFreeSwitch]:
    async with FakeFreeSwitch(ESL_PASSWORD) as server:
        yield server
        # Strict: whatever pbxsms wrote departed from neither the protocol nor its use.
        assert server.violations == []
