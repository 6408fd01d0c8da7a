"""Bandwidth callbacks are taken only with the application's callback credentials (Basic
auth, compared in constant time, fail closed); anything else stores nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import ClientSession

from pbxsms.sim.bandwidth import BandwidthSimulator
from tests.support.bandwidth import (
    CALLBACK_PASSWORD,
    CALLBACK_USER,
    CUSTOMER,
    OURS,
    bandwidth_env,
    toml,
)
from tests.support.carriers import stored_on
from tests.support.gateway import Gateway

StartGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def gateway(start_gateway: StartGateway, bandwidth: BandwidthSimulator) -> Gateway:
    return await start_gateway(toml=toml(), env=bandwidth_env(bandwidth))


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def assert_nothing_stored(gateway: Gateway) -> None:
    assert await stored_on(gateway, "sms.inbound.>") == 0
    assert await stored_on(gateway, "sms.status.>") == 0


async def test_a_callback_with_the_credentials_is_stored_once(
        gateway: Gateway, bandwidth: BandwidthSimulator) -> None:
    event = bandwidth.inbound_event(CUSTOMER, OURS, "hi")
    first = await bandwidth.push(f"{gateway.url}/webhook/bandwidth", [event])
    assert first.status == 200 and '"accepted"' in first.body
    again = await bandwidth.push(f"{gateway.url}/webhook/bandwidth", [event])
    assert again.status == 200 and '"duplicate"' in again.body
    assert await stored_on(gateway, "sms.inbound.bandwidth") == 1


@pytest.mark.parametrize("auth", [(CALLBACK_USER, "wrong"), ("wrong", CALLBACK_PASSWORD),
                                  ("", ""), (CALLBACK_USER, CALLBACK_PASSWORD + "x")])
async def test_wrong_credentials_are_refused(gateway: Gateway, bandwidth: BandwidthSimulator,
                                             auth: tuple[str, str]) -> None:
    result = await bandwidth.push_inbound(f"{gateway.url}/webhook/bandwidth", CUSTOMER, OURS,
                                          "hi", auth=auth)
    assert result.status == 401
    await assert_nothing_stored(gateway)


async def test_no_or_malformed_credentials_are_refused(gateway: Gateway,
                                                       bandwidth: BandwidthSimulator) -> None:
    body = json.dumps([bandwidth.inbound_event(CUSTOMER, OURS, "hi")])
    async with ClientSession() as http:
        for headers in ({}, {"Authorization": "Basic !!!"}, {"Authorization": "Bearer x"}):
            async with http.post(f"{gateway.url}/webhook/bandwidth", data=body,
                                 headers={"Content-Type": "application/json", **headers}
                                 ) as response:
                assert response.status == 401
                assert response.headers["WWW-Authenticate"].startswith("Basic")
    await assert_nothing_stored(gateway)


async def test_unset_callback_credentials_refuse_everything(
        start_gateway: StartGateway, bandwidth: BandwidthSimulator) -> None:
    gateway = await start_gateway(toml=toml(), env=bandwidth_env(
        bandwidth, BANDWIDTH_CALLBACK_PASSWORD=""))
    result = await bandwidth.push_inbound(f"{gateway.url}/webhook/bandwidth", CUSTOMER, OURS,
                                          "hi", auth=(CALLBACK_USER, ""))
    assert result.status == 401 and "unset" in result.body
    await assert_nothing_stored(gateway)


async def test_an_unreadable_event_stores_none_of_the_callback(
        gateway: Gateway, bandwidth: BandwidthSimulator) -> None:
    good = bandwidth.inbound_event(CUSTOMER, OURS, "hi")
    bad = {**bandwidth.inbound_event(CUSTOMER, OURS, "x"), "message": "not an object"}
    result = await bandwidth.push(f"{gateway.url}/webhook/bandwidth", [good, bad])
    assert result.status == 400 and "[1].message" in result.body
    outbound = bandwidth.inbound_event(CUSTOMER, OURS, "loop?")
    outbound["message"]["direction"] = "out"
    looped = await bandwidth.push(f"{gateway.url}/webhook/bandwidth", [outbound])
    assert looped.status == 422
    async with ClientSession() as http, http.post(
            f"{gateway.url}/webhook/bandwidth", data=b"[{",
            headers={"Authorization": basic(CALLBACK_USER, CALLBACK_PASSWORD)}) as response:
        assert response.status == 400
    await assert_nothing_stored(gateway)


async def test_a_callback_of_several_events_stores_each(gateway: Gateway,
                                                        bandwidth: BandwidthSimulator) -> None:
    events = [bandwidth.inbound_event(CUSTOMER, OURS, f"part {n}") for n in range(3)]
    events.append({"type": "message-sending-new-kind", "message": {}})
    result = await bandwidth.push(f"{gateway.url}/webhook/bandwidth", events)
    assert result.status == 200
    assert [r["result"] for r in json.loads(result.body)["results"]] == [
        "accepted", "accepted", "accepted", "ignored"]
    assert await stored_on(gateway, "sms.inbound.bandwidth") == 3
