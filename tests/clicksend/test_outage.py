"""A webhook is never answered 200 for something not stored: NATS down means 503."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable

from aiohttp import ClientSession

from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.core.model.events import State, StatusEvent, new_id
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
    # One of our messages, taken by ClickSend: its receipts are matched by ClickSend's id.
    ours, clicksend_id = new_id(), receipt()["message_id"]
    await gw.runtime.publish_status(StatusEvent(
        id=ours, direction="outbound", state=State.ACCEPTED, channel="clicksend",
        provider_message_id=clicksend_id))

    async def indexed() -> bool:
        return await gw.runtime.status.find_by_provider_id("clicksend", clicksend_id) == ours

    await wait_until(indexed, message="the provider id index")
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
    assert len(await stored(gw, f"sms.status.{ours}")) == 2  # accepted, then the receipt


async def test_nats_stopped_gives_503_at_once(start_gateway: StartGateway,
                                               nats_server: EmbeddedNats) -> None:
    # The default publish timeout (5 s): a carrier must not be held that long for a 503.
    gw = await start_gateway()
    nc = gw.runtime.nc
    assert nc is not None
    async with ClientSession() as http:
        await nats_server.stop()
        await wait_until(lambda: not nc.is_connected, message="the client to notice")
        for path, body in ((SMS, INBOUND_JSON), (DLR, json.dumps(receipt(custom_string=new_id())))):
            started = time.perf_counter()
            async with http.post(gw.url + path, data=body, headers=JSON) as resp:
                elapsed = time.perf_counter() - started
                assert resp.status == 503
                assert resp.headers["Retry-After"] == "5"
            assert elapsed < 0.1, f"{path} answered 503 after {elapsed:.3f} s"
        await nats_server.start()
        await wait_until(lambda: nc.is_connected, message="the client to reconnect")
        async with http.post(gw.url + SMS, data=INBOUND_JSON, headers=JSON) as resp:
            assert (resp.status, (await resp.json())["result"]) == (200, "accepted")


async def test_a_publish_in_flight_during_a_blip_still_completes(
        start_gateway: StartGateway, nats_server: EmbeddedNats) -> None:
    gw = await start_gateway()
    assert nats_server.process is not None
    pid = nats_server.process.pid
    async with ClientSession() as http:
        os.kill(pid, signal.SIGSTOP)  # the server hangs: the publish waits for its PubAck
        try:
            posted = asyncio.ensure_future(http.post(gw.url + SMS, data=INBOUND_JSON,
                                                     headers=JSON))
            await wait_until(lambda: gw.runtime.publisher.in_flight > 0,
                             message="the webhook's publish to be in flight")
        finally:
            os.kill(pid, signal.SIGCONT)
        async with await posted as resp:
            assert (resp.status, (await resp.json())["result"]) == (200, "accepted")
    assert len(await stored(gw, "sms.inbound.")) == 1
