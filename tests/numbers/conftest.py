"""Gateways with provider plugins, and an API client, for the message-settings tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientSession

from pbxsms.core.hookspecs import hookimpl
from pbxsms.core.plugins import Plugins
from pbxsms.core.registry import ProviderRegister
from pbxsms.core.serve.runtime import Runtime
from tests.conftest import Gateway

TOKEN = "numbers-t0ken"
ENV = {"PBXSMS_API_TOKEN": TOKEN, "PBXSMS_DEFAULT_REGION": "AU"}

StartGateway = Callable[..., Awaitable[Gateway]]


class StubProvider:
    """A second provider beside ClickSend; these tests never send through it."""

    max_batch = 1
    flush_delay = 0.0
    retry_ambiguous = True

    def __init__(self, name: str) -> None:
        self.name = name

    async def send_batch(self, messages: Any) -> Any:
        return []


class Providers:
    """Registers `othersms`, a provider beside the ClickSend plugin's own."""

    @hookimpl
    def register_providers(self, runtime: Runtime, register: ProviderRegister) -> None:
        register(StubProvider("othersms"))


def gateway_plugins() -> Plugins:
    plugins = Plugins(["clicksend", "email", "mobileapp"])
    plugins.register(Providers(), "test-providers")
    return plugins


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
