"""Twilio's webhooks are authenticated Twilio's way before anything in them is used: a
wrong signature, a tampered body, a replay and a request signed for another URL than
PBXSMS_PUBLIC_URL are each refused and store nothing."""

from __future__ import annotations

import asyncio
import hashlib
import json
from urllib.parse import urlencode

from aiohttp import ClientSession

from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.sim.twilio import TwilioSimulator, sign
from tests.helpers import wait_until
from tests.twilio.support import (
    AUTH_TOKEN,
    CUSTOMER,
    OUR_NUMBER,
    PUBLIC_URL,
    SMS_URL,
    STATUS_PATH,
    StartGateway,
    numbers_toml,
    stored,
)


async def test_a_wrong_signature_is_refused_and_stores_nothing(
        start_twilio_gateway: StartGateway, twilio: TwilioSimulator) -> None:
    gateway = await start_twilio_gateway()
    result = await twilio.push_inbound(SMS_URL, CUSTOMER, OUR_NUMBER, "hi", token="not-it")
    assert result.status == 401
    assert "X-Twilio-Signature does not match" in result.body
    unsigned = dict(result.headers)
    del unsigned["X-Twilio-Signature"]
    missing = await twilio.post_raw(SMS_URL, result.data, unsigned)
    assert missing.status == 401 and "missing X-Twilio-Signature" in missing.body
    assert await stored(gateway) == []


async def test_a_tampered_body_is_refused_and_stores_nothing(
        start_twilio_gateway: StartGateway, twilio: TwilioSimulator) -> None:
    gateway = await start_twilio_gateway()
    signed = await twilio.push_inbound(SMS_URL, CUSTOMER, OUR_NUMBER, "Call me at 5")
    assert signed.status == 200
    # The same signed request with another text, and with a parameter added.
    params = [(name, "Call me at 6" if name == "Body" else value)
              for name, value in signed.params]
    changed = await twilio.post_raw(SMS_URL, urlencode(params).encode(), signed.headers)
    added = await twilio.post_raw(SMS_URL, signed.data + b"&Extra=1", signed.headers)
    assert (changed.status, added.status) == (401, 401)
    [(_, event)] = await stored(gateway, "sms.inbound.")
    assert event["body"] == "Call me at 5"


async def test_a_request_signed_for_another_url_than_the_public_one_is_refused(
        start_twilio_gateway: StartGateway, twilio: TwilioSimulator) -> None:
    gateway = await start_twilio_gateway()
    # Signed for the address the gateway listens on, not the one Twilio was given...
    local = await twilio.push_inbound(SMS_URL, CUSTOMER, OUR_NUMBER, "hi",
                                      sign_url=gateway.url + "/webhook/twilio/sms")
    # ...for another host, and for the same URL with a query added.
    other = await twilio.push_inbound(SMS_URL, CUSTOMER, OUR_NUMBER, "hi",
                                      sign_url="https://evil.example.com/webhook/twilio/sms")
    query = await twilio.push_inbound(SMS_URL + "?x=1", CUSTOMER, OUR_NUMBER, "hi",
                                      sign_url=SMS_URL)
    assert [r.status for r in (local, other, query)] == [401, 401, 401]
    assert await stored(gateway) == []
    # The same request signed over the public URL, with its port spelled out, passes.
    port = await twilio.push_inbound(SMS_URL, CUSTOMER, OUR_NUMBER, "hi",
                                     sign_url="https://sms.example.com:443/webhook/twilio/sms")
    assert port.status == 200


async def test_a_replayed_webhook_is_refused_and_stores_nothing(
        start_twilio_gateway: StartGateway, twilio: TwilioSimulator) -> None:
    gateway = await start_twilio_gateway()
    first = await twilio.push_inbound(SMS_URL, CUSTOMER, OUR_NUMBER, "Is 3pm ok?")
    assert first.status == 200
    again = await twilio.replay(first)
    assert again.status == 409, again.body
    assert "already received" in again.body
    assert len(await stored(gateway, "sms.inbound.")) == 1

    # A status callback replayed, after its message was sent.
    async with ClientSession() as http, http.post(
            f"{gateway.url}/api/v1/messages", json={"from": OUR_NUMBER, "to": CUSTOMER,
                                                    "body": "See you then"},
            headers={"Authorization": "Bearer api-token"}) as response:
        assert response.status == 202
        ours = (await response.json())["id"]
    await wait_until(lambda: len(twilio.sent) == 1, message="the Twilio send")
    delivered = await twilio.push_status(twilio.sent[0]["sid"], "delivered")
    assert delivered.status == 204
    replayed = await twilio.replay(delivered)
    assert replayed.status == 409
    receipts = [event for _, event in await stored(gateway, f"sms.status.{ours}")
                if event["state"] == "delivered"]
    assert len(receipts) == 1


async def test_a_replay_after_jetstreams_duplicate_window_is_still_refused(
        start_twilio_gateway: StartGateway, twilio: TwilioSimulator) -> None:
    gateway = await start_twilio_gateway(toml=numbers_toml().replace(
        "[bus]\n", '[bus]\nduplicate_window = "1s"\n'))
    first = await twilio.push_inbound(SMS_URL, CUSTOMER, OUR_NUMBER, "Is 3pm ok?")
    assert first.status == 200
    info = await gateway.runtime.js.stream_info(gateway.runtime.stream)
    assert info.config.duplicate_window == 1.0
    # Waiting out a time window (not synchronising with anything): JetStream alone
    # would now store the same Nats-Msg-Id again.
    await asyncio.sleep(1.5)
    again = await twilio.replay(first)
    assert again.status == 409, again.body
    assert len(await stored(gateway, "sms.inbound.")) == 1


async def test_a_first_delivery_refused_for_an_outage_is_accepted_when_it_comes_again(
        start_twilio_gateway: StartGateway, twilio: TwilioSimulator,
        nats_server: EmbeddedNats) -> None:
    """The replay memory is written only once the event is stored: a 503 is no 'seen'."""
    gateway = await start_twilio_gateway(toml=numbers_toml().replace(
        "[bus]\n", '[bus]\npublish_timeout = "1s"\n'))
    nc = gateway.runtime.nc
    assert nc is not None
    await nats_server.stop()
    await wait_until(lambda: not nc.is_connected, message="the client to notice")
    # The gateway's first webhook: even the replay memory cannot be opened.
    first = await twilio.push_inbound(SMS_URL, CUSTOMER, OUR_NUMBER, "During the outage")
    assert first.status == 503, first.body
    await nats_server.start()
    await wait_until(lambda: nc.is_connected, message="the client to reconnect")
    # Open now: the next one is refused by the publish itself.
    assert (await twilio.push_inbound(SMS_URL, CUSTOMER, OUR_NUMBER, "warm-up")).status == 200
    await nats_server.stop()
    await wait_until(lambda: not nc.is_connected, message="the client to notice")
    second = await twilio.push_inbound(SMS_URL, CUSTOMER, OUR_NUMBER, "Later outage")
    assert second.status == 503, second.body
    await nats_server.start()
    await wait_until(lambda: nc.is_connected, message="the client to reconnect")
    for refused in (first, second):
        again = await twilio.replay(refused)
        assert again.status == 200, again.body
    bodies = [event["body"] for _, event in await stored(gateway, "sms.inbound.")]
    assert bodies == ["warm-up", "During the outage", "Later outage"]


async def test_other_refusals_before_anything_is_stored(
        start_twilio_gateway: StartGateway, twilio: TwilioSimulator) -> None:
    gateway = await start_twilio_gateway()
    # Another account's request, signed with our token all the same.
    params = [("MessageSid", "SM" + "a" * 32), ("AccountSid", "AC" + "f" * 32),
              ("From", CUSTOMER), ("To", OUR_NUMBER), ("Body", "hi")]
    other = await twilio.post_signed(SMS_URL, params)
    assert other.status == 403 and "AccountSid" in other.body
    # Not a form: refused without reading it as one.
    text = await twilio.post_raw(SMS_URL, b"hi", {
        "Content-Type": "text/plain", "X-Twilio-Signature": sign(AUTH_TOKEN, SMS_URL)})
    assert text.status == 415
    # A status callback that is about a message Twilio received.
    status_url = PUBLIC_URL + STATUS_PATH
    received = await twilio.post_signed(status_url, [
        ("MessageSid", "SM" + "b" * 32), ("AccountSid", twilio.account_sid),
        ("MessageStatus", "received"), ("From", CUSTOMER), ("To", OUR_NUMBER)])
    assert received.status == 422
    # Larger than any webhook of Twilio's.
    huge = await twilio.push_inbound(SMS_URL, CUSTOMER, OUR_NUMBER, "x" * 70_000)
    assert huge.status == 413
    assert await stored(gateway) == []


async def test_without_a_public_url_every_twilio_webhook_is_refused(
        start_twilio_gateway: StartGateway, twilio: TwilioSimulator) -> None:
    gateway = await start_twilio_gateway(PBXSMS_PUBLIC_URL="")
    result = await twilio.push_inbound(SMS_URL, CUSTOMER, OUR_NUMBER, "hi")
    assert result.status == 401 and "PBXSMS_PUBLIC_URL" in result.body
    assert await stored(gateway) == []


async def test_a_json_status_callback_is_checked_by_its_body_hash(
        start_twilio_gateway: StartGateway, twilio: TwilioSimulator) -> None:
    gateway = await start_twilio_gateway()
    async with ClientSession() as http, http.post(
            f"{gateway.url}/api/v1/messages", json={"from": OUR_NUMBER, "to": CUSTOMER,
                                                    "body": "JSON please"},
            headers={"Authorization": "Bearer api-token"}) as response:
        ours = (await response.json())["id"]
    await wait_until(lambda: len(twilio.sent) == 1, message="the Twilio send")
    sid = twilio.sent[0]["sid"]
    body = json.dumps({"MessageSid": sid, "MessageStatus": "delivered",
                       "AccountSid": twilio.account_sid}).encode()

    async def post(data: bytes, signed_body: bytes) -> int:
        url = (f"{PUBLIC_URL}{STATUS_PATH}?id={ours}&bodySHA256="
               + hashlib.sha256(signed_body).hexdigest())
        headers = {"Content-Type": "application/json",
                   "X-Twilio-Signature": sign(AUTH_TOKEN, url)}
        return (await twilio.post_raw(url, data, headers)).status

    assert await post(body.replace(b"delivered", b"failed"), body) == 401
    assert await post(body, body) == 204
    states = [event["state"] for _, event in await stored(gateway, f"sms.status.{ours}")]
    assert "delivered" in states and "failed" not in states
