"""Gateways with provider plugins, and an API client, for the message-settings tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientSession

from tests.numbers.gateways import ENV, TOKEN, gateway_plugins
from tests.support.gateway import Gateway, StartGateway


@pytest.fixture
def start(start_gateway: StartGateway) -> StartGateway:
    """`await start(toml="...")`: a gateway with the API token, region AU and providers."""

    async def run(toml: str = "", env: dict[str, str] | None = None) -> Gateway:
        return await start_gateway(toml=toml, env={**ENV, **(env or {})},
                                   plugins=gateway_plugins())

    return run


@pytest.fixture
async def http() -> AsyncIterator[ClientSession]:
    """An HTTP client carrying the API token."""
    async with ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
        yield session
