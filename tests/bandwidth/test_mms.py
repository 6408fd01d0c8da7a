"""Inbound MMS through Bandwidth: two pictures listed in `message.media[]` reach the email as
attachments and the app as signed links, downloaded from the media API with the API
user's Basic credentials; without them the text is still delivered, the reason recorded."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from pbxsms.core.model.events import State
from pbxsms.core.plugin_api import Refusal
from pbxsms.plugins.bandwidth.inbound import parse_event
from pbxsms.sim.bandwidth import BandwidthSimulator
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.helpers import free_port, wait_until
from tests.support.bandwidth import CUSTOMER, OURS, bandwidth_env, toml
from tests.support.delivery import delivery_env, wait_channel
from tests.support.gateway import Gateway
from tests.support.media import pictures_delivered, png, send_mms, sha256
from tests.support.smtp import SmtpServer

StartGateway = Callable[..., Awaitable[Gateway]]


async def _start(start_gateway: StartGateway, sim: BandwidthSimulator,
                 app: MobileAppSimulator, smtp: SmtpServer, **more: str) -> Gateway:
    port = free_port()
    env = {**delivery_env(app, smtp), **bandwidth_env(sim), "PBXSMS_HTTP_PORT": str(port),
           "PBXSMS_PUBLIC_URL": f"http://127.0.0.1:{port}",
           "PBXSMS_MEDIA_URL_SECRET": "media-link-secret", "PBXSMS_MEDIA_FETCH_ATTEMPTS": "2",
           "BANDWIDTH_MEDIA_SIMULATOR": sim.base_url, **more}
    return await start_gateway(toml=toml('"bandwidth", "email", "mobileapp"'), env=env)


async def _inbound_event(gateway: Gateway) -> dict[str, Any]:
    msg = await gateway.runtime.js.get_last_msg(gateway.runtime.stream,
                                                "sms.inbound.bandwidth.mms")
    event: dict[str, Any] = json.loads(msg.data or b"")
    return event


async def test_two_pictures_reach_the_email_and_the_app(
        start_gateway: StartGateway, bandwidth: BandwidthSimulator, app: MobileAppSimulator,
        smtp: SmtpServer) -> None:
    gateway = await _start(start_gateway, bandwidth, app, smtp,
                           BANDWIDTH_MEDIA_USERNAME="api-user",
                           BANDWIDTH_MEDIA_PASSWORD="api-pa55word")
    bandwidth.media_username, bandwidth.media_password = "api-user", "api-pa55word"
    pictures = [png(1), png(2)]
    pushed = await bandwidth.push_inbound(f"{gateway.url}/webhook/bandwidth", CUSTOMER, OURS,
                                          "Here is the damage",
                                          media=[(data, "image/png") for data in pictures])
    assert pushed.status == 200, pushed.body
    links = pushed.payload[0]["message"]["media"]
    assert len(links) == 2
    event = await _inbound_event(gateway)
    assert event["media_urls"] == links

    await pictures_delivered(gateway, event["id"], pictures, "Here is the damage", smtp,
                             app, email="front@example.com")
    basic = "Basic " + base64.b64encode(b"api-user:api-pa55word").decode()
    for link in links:
        hosted = bandwidth.media_of(link)
        assert hosted is not None and [auth for _, auth in hosted.fetches] == [basic]


async def test_without_the_api_user_the_text_is_delivered_and_the_401_recorded(
        start_gateway: StartGateway, bandwidth: BandwidthSimulator, app: MobileAppSimulator,
        smtp: SmtpServer) -> None:
    gateway = await _start(start_gateway, bandwidth, app, smtp)
    pushed = await bandwidth.push_inbound(f"{gateway.url}/webhook/bandwidth", CUSTOMER, OURS,
                                          "Photo", media=[(png(3), "image/png")])
    assert pushed.status == 200, pushed.body
    event = await _inbound_event(gateway)
    record = await wait_channel(gateway.runtime, event["id"], "media", State.FAILED,
                                timeout=20)
    assert "answered HTTP 401" in (record.channels["media"].reason or "")
    await wait_channel(gateway.runtime, event["id"], "mobileapp", State.DELIVERED)
    assert [p.content for p in app.pushes] == ["Photo\n(1 attachment could not be fetched)"]
    (link,) = pushed.payload[0]["message"]["media"]
    hosted = bandwidth.media_of(link)
    assert hosted is not None and [auth for _, auth in hosted.fetches] == [None]


async def test_an_mms_from_the_api_goes_out_with_its_pictures_as_signed_media_urls(
        start_gateway: StartGateway, bandwidth: BandwidthSimulator, app: MobileAppSimulator,
        smtp: SmtpServer) -> None:
    gateway = await _start(start_gateway, bandwidth, app, smtp)
    pictures = [png(4), png(5)]
    message_id = await send_mms(gateway, "api-t0ken", OURS, CUSTOMER, pictures)
    await wait_channel(gateway.runtime, message_id, "bandwidth", State.ACCEPTED)

    (request,) = bandwidth.send_requests
    assert request.body["text"] == "Your invoice"
    links = request.body["media"]
    assert len(links) == 2 and all(link.startswith(f"{gateway.url}/media/") for link in links)
    (sent,) = bandwidth.sent_messages
    # Bandwidth fetches each picture from the gateway: the same bytes.
    await wait_until(lambda: len(bandwidth.sent_media[sent["id"]]) == 2,
                     message="Bandwidth's fetches")
    assert [(status, sha256(data)) for _, status, data in bandwidth.sent_media[sent["id"]]] \
        == [(200, sha256(data)) for data in pictures]
    result = await bandwidth.push_receipt(f"{gateway.url}/webhook/bandwidth", sent["id"])
    assert 200 <= result.status < 300, result.body
    await wait_channel(gateway.runtime, message_id, "bandwidth", State.DELIVERED)


def _received(media: object) -> dict[str, Any]:
    return {"type": "message-received", "to": OURS, "message": {
        "id": "14762070468292kw2fuqty55yp2b2", "direction": "in", "from": CUSTOMER,
        "to": [OURS], "text": "hi", "media": media}}


def test_media_urls_skip_the_smil_layout_and_a_malformed_list_is_refused() -> None:
    base = "https://messaging.bandwidth.com/api/v2/users/9900000/media/1476/"
    event = parse_event(_received([base + "0/bw.png", base + "1/smil.smil"]), 0, "US")
    assert event.message.media_urls == [base + "0/bw.png"]  # type: ignore[union-attr]
    with pytest.raises(Refusal) as refused:
        parse_event(_received([{"url": base}]), 0, "US")
    assert refused.value.field == "[0].message.media"
