"""Twilio tests: a gateway behind a (simulated) TLS proxy, the Twilio simulator, the app
simulator and a real SMTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from pbxsms.sim.mobileapp import MobileAppSimulator
from pbxsms.sim.twilio import TwilioSimulator
from tests.conftest import Gateway
from tests.delivery.support import APP_TOKEN, SmtpServer, gateway_env
from tests.helpers import free_port
from tests.twilio.support import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, numbers_toml

StartGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioSimulator]:
    async with TwilioSimulator(AUTH_TOKEN, ACCOUNT_SID) as simulator:
        yield simulator


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
def start_twilio_gateway(start_gateway: StartGateway, twilio: TwilioSimulator,
                         app: MobileAppSimulator, smtp: SmtpServer) -> StartGateway:
    """A gateway with the twilio, email and mobileapp plugins, reached by the simulator
    through PUBLIC_URL as through a TLS proxy."""

    async def start(toml: str | None = None, **env: str) -> Gateway:
        settings = gateway_env(app, smtp, TWILIO_ACCOUNT_SID=ACCOUNT_SID,
                               TWILIO_AUTH_TOKEN=AUTH_TOKEN, TWILIO_BASE_URL=twilio.base_url,
                               PBXSMS_PUBLIC_URL=PUBLIC_URL, PBXSMS_API_TOKEN="api-token")
        gateway = await start_gateway(toml=numbers_toml() if toml is None else toml,
                                      env={**settings, **env})
        twilio.behind_proxy(PUBLIC_URL, gateway.url)
        return gateway

    return start
