"""Outbound fixtures: a ClickSend simulator, and a gateway configured to send through it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from pbxsms.sim.clicksend import ClickSendSimulator
from tests.outbound.sending import BUS, KEY, NUMBERS, TOKEN, USER
from tests.support.gateway import Gateway, StartGateway


@pytest.fixture
async def sim() -> AsyncIterator[ClickSendSimulator]:
    simulator = ClickSendSimulator([(USER, KEY)])
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
def start_sending_gateway(start_gateway: StartGateway, sim: ClickSendSimulator
                          ) -> Callable[..., Awaitable[Gateway]]:
    """`await start_sending_gateway(clicksend="...", env={...})`: a gateway on the simulator."""

    async def start(clicksend: str = "", env: dict[str, str] | None = None,
                    toml: str = "") -> Gateway:
        settings = {"CLICKSEND_USERNAME": USER, "CLICKSEND_API_KEY": KEY,
                    "CLICKSEND_BASE_URL": sim.base_url, "PBXSMS_API_TOKEN": TOKEN,
                    "CLICKSEND_WEBHOOK_TOKEN": "cs-hook-token", **(env or {})}
        config = f"{NUMBERS}\n{BUS}\n[clicksend]\n{clicksend}\n{toml}"
        return await start_gateway(toml=config, env=settings)

    return start
