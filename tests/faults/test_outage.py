"""Broker outage: nats-server stops for 10 s under load, then comes back.

While it is down a webhook (ClickSend's, or Twilio's signed one) answers 503 (never 200
for a message that is then lost) and the API refuses sends with 503; when it returns, the
gateway recovers by itself and the backlog drains to the app and email.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.sim.mobileapp import MobileAppSimulator
from pbxsms.sim.twilio import TwilioSimulator
from tests.faults.support import (
    CARRIERS,
    CUSTOMER,
    FULL,
    SECRETS,
    Sinks,
    Webhook,
    add_result,
    bodies,
    fault_env,
    gateway_toml,
    measure,
    poster_for,
)
from tests.helpers import wait_until
from tests.support.gateway import Gateway
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.faults

OUTAGE = 10.0
LOAD = 1000 if FULL else 300


@pytest.mark.parametrize("carrier", CARRIERS)
async def test_nats_down_for_10s_under_load(
    start_gateway: Callable[..., Awaitable[Gateway]], nats_server: EmbeddedNats,
    app: MobileAppSimulator, smtp: SmtpServer, twilio: TwilioSimulator, carrier: str,
) -> None:
    gateway = await start_gateway(toml=gateway_toml(carrier=carrier), env=fault_env(app, smtp))
    sent = bodies("outage", LOAD)
    hooks = [Webhook(body) for body in sent]
    poster = poster_for(carrier, gateway.url, twilio, concurrency=8)
    load = asyncio.create_task(poster.deliver(hooks, deadline=180))
    await wait_until(lambda: poster.accepted >= LOAD // 4, 60, "a quarter of the load")

    await nats_server.stop()
    down_since = time.monotonic()
    sends: list[int] = []
    probes: list[Webhook] = []  # webhooks posted while it is down, two at a time
    async with aiohttp.ClientSession() as session:

        async def api_sends() -> None:
            while time.monotonic() - down_since < OUTAGE:
                sends.append(await _send(session, gateway.url))
                await asyncio.sleep(0.5)

        async def webhooks() -> None:
            while time.monotonic() - down_since < OUTAGE:
                probe = Webhook(bodies("outage-probe", 1)[0])
                probes.append(probe)
                await poster.post_once(session, probe)
                # The 503 comes at once while the bus is down: a carrier's pace, not a flood.
                await asyncio.sleep(0.25)

        await asyncio.gather(api_sends(), webhooks(), webhooks())
        async with session.get(f"{gateway.url}/readyz") as readyz:
            assert readyz.status == 503, "not ready while the bus is down"
    # While down: the API refuses sends, every webhook answers 503 (ClickSend retries).
    assert set(sends) == {503}, sends
    assert {probe.answers[0] for probe in probes} == {503}, [p.answers for p in probes]
    await nats_server.start()
    await poster.deliver(probes, deadline=60)
    sent += [probe.body for probe in probes]
    await asyncio.wait_for(load, 180)
    sinks = Sinks(app, smtp)
    await wait_until(lambda: sinks.all_delivered(sent), 120, "the backlog drained")

    async def ready() -> bool:
        async with aiohttp.ClientSession() as session, session.get(
                f"{gateway.url}/readyz") as response:
            return response.status == 200

    await wait_until(ready, 30, "ready again by itself")
    async with aiohttp.ClientSession() as session:
        assert await _send(session, gateway.url) == 202, "sends are taken again"
    refused = sum(1 for hook in [*hooks, *probes] for a in hook.answers if a != 200)
    name, via = ("outage", "") if carrier == "clicksend" else (
        f"outage-{carrier}", f" {carrier.title()}")
    result = add_result(measure(name, f"nats-server stopped for {OUTAGE:.0f} s under{via} "
                            "webhook load, then started again", sinks, sent,
                            notes=f"({refused} webhook answers were 503 or none, "
                            "all retried; API sends answered 503 while down)."))
    assert (result.lost, result.duplicated) == (0, 0)


async def _send(session: aiohttp.ClientSession, url: str) -> int:
    async with session.post(f"{url}/api/v1/messages",
                            json={"extension": "201", "to": CUSTOMER, "body": "reply"},
                            headers={"Authorization": f"Bearer {SECRETS['PBXSMS_API_TOKEN']}"},
                            timeout=aiohttp.ClientTimeout(total=15)) as response:
        return response.status
