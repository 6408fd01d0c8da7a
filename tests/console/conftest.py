"""Console fixtures: the ClickSend simulator and a gateway with the console on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from pbxsms.sim.clicksend import ClickSendSimulator
from tests.console.browser import Browser, missing
from tests.console.support import KEY, TOML, USER, env
from tests.support.gateway import Gateway


@pytest.fixture
async def sim() -> AsyncIterator[ClickSendSimulator]:
    simulator = ClickSendSimulator([(USER, KEY)])
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def console_gateway(start_gateway: Callable[..., Awaitable[Gateway]],
                          sim: ClickSendSimulator) -> Gateway:
    return await start_gateway(toml=TOML, env=env(sim.base_url))


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    reason = missing()
    if reason is not None:
        pytest.skip(reason)
    opened = await Browser.open()
    yield opened
    await opened.close()
