"""A webhook is never answered 200 for something not stored: NATS down means 503."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp import ClientSession

from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.core.model.events import new_id
from tests.clicksend.samples import INBOUND_JSON, JSON, SAMPLE_MESSAGE_ID, receipt, stored
from tests.helpers import wait_until
from tests.support.gateway import Gateway

StartGateway = Callable[..., Awaitable[Gateway]]
SMS = "/webhook/clicksend/sms"
DLR = "/webhook/clicksend/dlr"


async def test_nats_down_gives_503_and_recovers_without_restarting_pbxsms(
        start_gateway: StartGateway, nats_server: EmbeddedNats) -> None:
    gw = await start_gateway(toml='[bus]\npublish_timeout = "1s"\n')
    nc = gw.runtime.nc
    assert nc is not None
    ours = new_id()
    async with ClientSession() as http:
        await nats_server.stop()
        await wait_until(lambda: not nc.is_connected, message="the client to notice")
        async with http.post(gw.url + SMS, data=INBOUND_JSON, headers=JSON) as resp:
            assert resp.status == 503
            assert resp.headers["Retry-After"] == "5"
            assert "retry" in (await resp.json())["error"]
        async with http.post(gw.url + DLR, data=json.dumps(receipt(custom_string=ours)),
                             headers=JSON) as resp:
            assert resp.status == 503
        # Without custom_string our id must be looked up, which needs NATS too.
        async with http.post(gw.url + DLR, data=json.dumps(receipt()), headers=JSON) as resp:
            assert resp.status == 503

        await nats_server.start()
        await wait_until(lambda: nc.is_connected, message="the client to reconnect")
        # ClickSend retries the same webhook: stored once, whatever the 503 left behind.
        async with http.post(gw.url + SMS, data=INBOUND_JSON, headers=JSON) as resp:
            assert resp.status == 200
            assert (await resp.json())["result"] in ("accepted", "duplicate")
        async with http.post(gw.url + DLR, data=json.dumps(receipt(custom_string=ours)),
                             headers=JSON) as resp:
            assert resp.status == 200
    inbound = await stored(gw, "sms.inbound.")
    assert [msg_id for _, _, msg_id in inbound] == [f"clicksend:{SAMPLE_MESSAGE_ID}"]
    assert len(await stored(gw, f"sms.status.{ours}")) == 1
