"""ClickSend webhook tests run against a gateway that owns the samples' numbers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from tests.support.gateway import Gateway

# The `to` numbers of ClickSend's published samples and of these tests: ours, routed to
# extension 201, so that inbound messages are routed rather than unroutable. Only the
# clicksend plugin runs: these tests look at what the webhooks store, not at deliveries.
# They post without a token, so they opt in to open webhooks the operator's explicit way
# (tests/clicksend/test_refusals.py checks that a gateway without either refuses them).
OPEN = {"CLICKSEND_WEBHOOK_INSECURE": "true"}
OUR_NUMBERS = ("+61477485926", "+61411111111", "+61422222222")
NUMBERS_TOML = '[plugins]\nenabled = ["clicksend"]\n\n' + "".join(
    f'[[numbers]]\nnumber = "{number}"\nprovider = "clicksend"\nextension = "201"\n\n'
    for number in OUR_NUMBERS)


@pytest.fixture
def start_gateway(
    start_gateway: Callable[..., Awaitable[Gateway]],
) -> Callable[..., Awaitable[Gateway]]:
    async def start(toml: str = "", env: dict[str, str] | None = None,
                    **kwargs: object) -> Gateway:
        return await start_gateway(toml=toml + "\n" + NUMBERS_TOML, env={**OPEN, **(env or {})},
                                   **kwargs)

    return start
