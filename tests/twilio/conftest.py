"""Twilio tests' fixtures: the Twilio simulator, and gateways reached through it as
through a TLS proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pbxsms.sim.mobileapp import MobileAppSimulator
from pbxsms.sim.twilio import TwilioSimulator
from tests.support.delivery import delivery_env
from tests.support.gateway import Gateway
from tests.support.smtp import SmtpServer
from tests.twilio.support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_URL,
    StartGateway,
    numbers_toml,
)


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioSimulator]:
    async with TwilioSimulator(AUTH_TOKEN, ACCOUNT_SID) as simulator:
        yield simulator


@pytest.fixture
def start_twilio_gateway(start_gateway: StartGateway, twilio: TwilioSimulator,
                         app: MobileAppSimulator, smtp: SmtpServer) -> StartGateway:
    """A gateway with the twilio, email and mobileapp plugins, reached by the simulator
    through PUBLIC_URL as through a TLS proxy."""

    async def start(toml: str | None = None, **env: str) -> Gateway:
        settings = delivery_env(app, smtp, TWILIO_ACCOUNT_SID=ACCOUNT_SID,
                                TWILIO_AUTH_TOKEN=AUTH_TOKEN, TWILIO_BASE_URL=twilio.base_url,
                                PBXSMS_PUBLIC_URL=PUBLIC_URL, PBXSMS_API_TOKEN="api-token")
        gateway = await start_gateway(toml=numbers_toml() if toml is None else toml,
                                      env={**settings, **env})
        twilio.behind_proxy(PUBLIC_URL, gateway.url)
        return gateway

    return start
