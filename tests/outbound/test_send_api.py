"""`POST /api/v1/messages`: 202 once durable, clear refusals, the queued status."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiohttp import ClientSession

from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.core.model.events import new_id
from pbxsms.sim.clicksend import ClickSendSimulator
from tests.helpers import wait_until
from tests.outbound.sending import OURS, TOKEN, post_message, recipient
from tests.support.carriers import settled
from tests.support.gateway import StartGateway


async def test_send_answers_202_with_our_id_and_the_status_shows_segments(
        start_sending_gateway: StartGateway, sim: ClickSendSimulator) -> None:
    gateway = await start_sending_gateway()
    status, answer = await post_message(gateway, {"from": "+61 481 070 001",
                                                  "to": recipient(3), "body": "Привет!"})
    assert status == 202
    assert answer == {"id": answer["id"], "state": "queued", "segments": 1,
                      "encoding": "UCS-2", "duplicate": False}
    record = await settled(gateway, answer["id"], "accepted")
    assert record.segments == 1
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with ClientSession(headers=headers) as http, \
            http.get(f"{gateway.url}/api/v1/messages/{answer['id']}") as response:
        body = await response.json()
    assert body["state"] == "accepted"
    assert [h["state"] for h in body["history"]] == ["queued", "sending", "accepted"]
    assert sim.sent_messages[0]["from"] == OURS  # normalised to E.164


async def test_send_by_extension_and_a_retried_call_with_the_same_id(
        start_sending_gateway: StartGateway, sim: ClickSendSimulator) -> None:
    gateway = await start_sending_gateway()
    payload = {"id": new_id(), "extension": "101", "to": recipient(4), "body": "On my way"}
    first = await post_message(gateway, payload)
    second = await post_message(gateway, payload)
    assert first[0] == second[0] == 202
    assert (first[1]["duplicate"], second[1]["duplicate"]) == (False, True)
    await settled(gateway, payload["id"], "accepted")
    assert [m["custom_string"] for m in sim.sent_messages] == [payload["id"]]


TOO_LONG = "x" * (6 * 153 + 1)


@pytest.mark.parametrize(("payload", "field", "words"), [
    ({"from": OURS, "to": "12", "body": "hi"}, "to", "not a possible"),
    ({"from": OURS, "body": "hi"}, "to", "required"),
    ({"from": OURS, "to": ["+61400000001"], "body": "hi"}, "to", "string"),
    ({"from": OURS, "to": "+61400000001", "body": "  \n"}, "body", "empty"),
    ({"from": OURS, "to": "+61400000001"}, "body", "required"),
    ({"from": OURS, "to": "+61400000001", "body": TOO_LONG}, "body", "limit is 6 parts"),
    ({"from": OURS, "to": "+61400000001", "body": "ж" * 403}, "body", "402 UCS-2"),
    ({"to": "+61400000001", "body": "hi"}, "from", "extension"),
    ({"from": "+61400000009", "to": "+61400000001", "body": "hi"}, "from",
     "not one of the gateway's numbers"),
    ({"extension": "999", "to": "+61400000001", "body": "hi"}, "extension", "no enabled"),
    ({"from": OURS, "to": "+61400000001", "body": "hi", "id": "x.y"}, "id", "UUID"),
    ({"from": OURS, "to": "+61400000001", "body": "hi", "provider": "nope"}, "provider",
     "not enabled"),
])
async def test_invalid_requests_are_refused_with_the_field(
        start_sending_gateway: StartGateway, sim: ClickSendSimulator,
        payload: dict[str, Any], field: str, words: str) -> None:
    gateway = await start_sending_gateway()
    status, answer = await post_message(gateway, payload)
    assert status == 422, answer
    assert answer["field"] == field and words in answer["error"], answer


async def test_the_segment_limit_is_configurable(start_sending_gateway: StartGateway) -> None:
    gateway = await start_sending_gateway(toml="[outbound]\nmax_segments = 1\n")
    status, answer = await post_message(gateway, {"from": OURS, "to": recipient(1),
                                                  "body": "a" * 161})
    assert status == 422 and "160 GSM-7 characters" in answer["error"]


async def test_malformed_and_unauthorised_calls(start_sending_gateway: StartGateway) -> None:
    gateway = await start_sending_gateway()
    url = f"{gateway.url}/api/v1/messages"
    good = {"from": OURS, "to": recipient(1), "body": "hi"}
    async with ClientSession(headers={"Authorization": "Bearer wrong"}) as http, \
            http.post(url, json=good) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="pbxsms"'
        assert await response.json() == {"error": "missing or wrong Bearer token"}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with ClientSession(headers=headers) as http:
        async with http.post(url, data=good) as response:  # a form, not JSON
            assert response.status == 415
        for raw in (b"{not json", b"[1, 2]", b"\xff\xfe"):
            async with http.post(url, data=raw,
                                 headers={"Content-Type": "application/json"}) as response:
                assert response.status == 400, raw
                assert "error" in await response.json()


async def test_nothing_is_accepted_when_it_cannot_be_stored(
        start_sending_gateway: StartGateway) -> None:
    gateway = await start_sending_gateway()
    await gateway.runtime.js.delete_stream(gateway.runtime.stream)
    status, answer = await post_message(gateway, {"from": OURS, "to": recipient(1),
                                                  "body": "hi"})
    assert status == 503 and "try again" in answer["error"]


async def test_a_send_while_nats_is_stopped_is_refused_at_once(
        start_sending_gateway: StartGateway, nats_server: EmbeddedNats) -> None:
    # The default publish timeout (5 s): a caller must not be held that long for a 503.
    gateway = await start_sending_gateway()
    nc = gateway.runtime.nc
    assert nc is not None
    await nats_server.stop()
    await wait_until(lambda: not nc.is_connected, message="the client to notice")
    url = f"{gateway.url}/api/v1/messages"
    plain = {"from": OURS, "to": recipient(1), "body": "hi"}
    with_media = {**plain, "media": [{"id": "0123456789abcdef0123"}]}
    async with ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        for payload in (plain, with_media):
            started = time.perf_counter()
            async with http.post(url, json=payload) as response:
                elapsed = time.perf_counter() - started
                assert response.status == 503
                assert response.headers["Retry-After"] == "5"
                assert "try again" in (await response.json())["error"]
            assert elapsed < 0.1, f"answered 503 after {elapsed:.3f} s"
        # A request that is wrong is still told so, bus or not.
        async with http.post(url, json={**plain, "to": "not a number"}) as response:
            assert response.status == 422
    await nats_server.start()
    await wait_until(lambda: nc.is_connected, message="the client to reconnect")
    status, _ = await post_message(gateway, plain)
    assert status == 202


async def test_the_dispatcher_status_events_carry_the_channel(
        start_sending_gateway: StartGateway) -> None:
    gateway = await start_sending_gateway()
    _, answer = await post_message(gateway, {"from": OURS, "to": recipient(1),
                                                  "body": "hi"})
    record = await settled(gateway, answer["id"], "accepted")
    assert set(record.channels) == {"clicksend"}
    assert record.summary == "clicksend: accepted"
    assert record.history[-1].provider_message_id == record.provider_message_id
