"""Broker outage with Telnyx as the carrier: nats-server stops for 10 s under signed
Telnyx webhook load, then comes back. Every webhook answered 503 meanwhile is signed again
and retried (as Telnyx retries), and every message reaches the app and email once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.sim.mobileapp import MobileAppSimulator
from pbxsms.sim.telnyx import TelnyxSimulator
from tests.faults.support import (
    CUSTOMER,
    FULL,
    MAILBOX,
    MAX_IN_FLIGHT,
    Sinks,
    add_result,
    bodies,
    fault_env,
    measure,
)
from tests.helpers import wait_until
from tests.support.delivery import ORG
from tests.support.gateway import Gateway
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.faults

OUTAGE = 10.0
LOAD = 1000 if FULL else 300
NUMBER = "+13125550100"  # ours on Telnyx, extension 201

TOML = f"""
[plugins]
enabled = ["telnyx", "email", "mobileapp"]

[bus]
backoff_initial = "100ms"
backoff_max = "1s"
max_deliver = 20
max_in_flight = {MAX_IN_FLIGHT}
ack_wait = "3s"

[[numbers]]
number = "{NUMBER}"
provider = "telnyx"
extension = "201"
domain = "pbx.example.com"
email = ["{MAILBOX}"]
mobileapp_org = "{ORG}"
"""


class TelnyxPoster:
    """Posts signed `message.received` webhooks until each is answered 200; a retry is
    signed again with a fresh timestamp, the message id stays the same."""

    def __init__(self, telnyx: TelnyxSimulator, url: str, concurrency: int = 8) -> None:
        self.telnyx, self.url, self.concurrency = telnyx, url, concurrency
        self.accepted = 0
        self.refused = 0

    async def deliver(self, texts: list[str], deadline: float) -> None:
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        for n, text in enumerate(texts):
            queue.put_nowait((text, f"tx-{n:05d}-{text.split()[1]}"))
        end = time.monotonic() + deadline

        async def worker() -> None:
            while not queue.empty():
                text, message_id = queue.get_nowait()
                while True:
                    try:
                        result = await self.telnyx.push_inbound(
                            self.url, CUSTOMER, NUMBER, text, message_id=message_id)
                        status = result.status
                    except (OSError, TimeoutError):
                        status = 0
                    if status == 200:
                        self.accepted += 1
                        break
                    assert status in (0, 503), f"webhook answered {status}, not 200 or 503"
                    self.refused += 1
                    if time.monotonic() > end:
                        raise AssertionError(f"{message_id} never answered 200")
                    await asyncio.sleep(0.2)

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))


async def test_nats_down_for_10s_under_telnyx_load(
    start_gateway: Callable[..., Awaitable[Gateway]], nats_server: EmbeddedNats,
    app: MobileAppSimulator, smtp: SmtpServer,
) -> None:
    async with TelnyxSimulator(["tx-key"]) as telnyx:
        gateway = await start_gateway(toml=TOML, env={
            **fault_env(app, smtp), "TELNYX_API_KEY": "tx-key",
            "TELNYX_PUBLIC_KEY": telnyx.public_key, "TELNYX_BASE_URL": telnyx.base_url})
        sent = bodies("telnyx-outage", LOAD)
        poster = TelnyxPoster(telnyx, f"{gateway.url}/webhook/telnyx")
        load = asyncio.create_task(poster.deliver(sent, deadline=180))
        await wait_until(lambda: poster.accepted >= LOAD // 4, 60, "a quarter of the load")
        await nats_server.stop()
        await wait_until(lambda: poster.refused > 0, 30, "a webhook refused while down")
        await asyncio.sleep(OUTAGE)  # the outage itself: the load keeps coming meanwhile
        await nats_server.start()
        await asyncio.wait_for(load, 180)
        sinks = Sinks(app, smtp)
        await wait_until(lambda: sinks.all_delivered(sent), 120, "the backlog drained")
    result = add_result(measure("outage-telnyx", f"nats-server stopped for {OUTAGE:.0f} s under "
                            "signed Telnyx webhook load, then started again", sinks, sent,
                            notes=f"({poster.refused} webhook answers were 503 or none, "
                            "each retried signed afresh)."))
    assert (result.lost, result.duplicated) == (0, 0)
