"""Inbound MMS through Telnyx: two pictures listed in `data.payload.media[]` reach the email
as attachments and the app as signed links; a media host off the allow-list is refused
with the reason and the text still delivered."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from pbxsms.core.model.events import State
from pbxsms.core.plugin_api import Refusal
from pbxsms.plugins.telnyx.inbound import media_urls
from pbxsms.sim.mobileapp import MobileAppSimulator
from pbxsms.sim.telnyx import TelnyxSimulator
from tests.helpers import free_port, wait_until
from tests.support.delivery import delivery_env, wait_channel
from tests.support.gateway import Gateway
from tests.support.media import pictures_delivered, png, send_mms, sha256
from tests.support.smtp import SmtpServer
from tests.support.telnyx import API_TOKEN, CUSTOMER, OURS, telnyx_env, toml

StartGateway = Callable[..., Awaitable[Gateway]]


async def _start(start_gateway: StartGateway, telnyx: TelnyxSimulator,
                 app: MobileAppSimulator, smtp: SmtpServer, **more: str) -> Gateway:
    port = free_port()
    env = {**delivery_env(app, smtp), **telnyx_env(telnyx), "PBXSMS_HTTP_PORT": str(port),
           "PBXSMS_PUBLIC_URL": f"http://127.0.0.1:{port}",
           "PBXSMS_MEDIA_URL_SECRET": "media-link-secret", "PBXSMS_MEDIA_FETCH_ATTEMPTS": "2",
           **more}
    return await start_gateway(toml=toml('"telnyx", "email", "mobileapp"'), env=env)


async def _inbound_event(gateway: Gateway) -> dict[str, Any]:
    msg = await gateway.runtime.js.get_last_msg(gateway.runtime.stream,
                                                "sms.inbound.telnyx.mms")
    event: dict[str, Any] = json.loads(msg.data or b"")
    return event


async def test_two_pictures_reach_the_email_and_the_app(
        start_gateway: StartGateway, telnyx: TelnyxSimulator, app: MobileAppSimulator,
        smtp: SmtpServer) -> None:
    gateway = await _start(start_gateway, telnyx, app, smtp,
                           TELNYX_MEDIA_SIMULATOR=telnyx.base_url)
    pictures = [png(1), png(2)]
    pushed = await telnyx.push_inbound(f"{gateway.url}/webhook/telnyx", CUSTOMER, OURS,
                                       "Here is the damage",
                                       media=[(data, "image/png") for data in pictures])
    assert pushed.status == 200, pushed.body
    media = pushed.payload["data"]["payload"]["media"]
    assert pushed.payload["data"]["payload"]["type"] == "MMS"
    event = await _inbound_event(gateway)
    assert event["media_urls"] == [item["url"] for item in media]

    await pictures_delivered(gateway, event["id"], pictures, "Here is the damage", smtp,
                             app, email="front@example.com")
    # Each link fetched once, with no credentials (Telnyx's need none).
    for item in media:
        hosted = telnyx.media_of(item["url"])
        assert hosted is not None and [auth for _, auth in hosted.fetches] == [None]


async def test_a_host_off_the_allow_list_is_refused_and_the_text_delivered(
        start_gateway: StartGateway, telnyx: TelnyxSimulator, app: MobileAppSimulator,
        smtp: SmtpServer) -> None:
    # The default: no Telnyx media host is allowed until one is listed.
    gateway = await _start(start_gateway, telnyx, app, smtp)
    pushed = await telnyx.push_inbound(f"{gateway.url}/webhook/telnyx", CUSTOMER, OURS,
                                       "Photo", media=[(png(3), "image/png")])
    assert pushed.status == 200, pushed.body
    event = await _inbound_event(gateway)
    record = await wait_channel(gateway.runtime, event["id"], "media", State.FAILED,
                                timeout=20)
    assert "http:// is refused: only https" in (record.channels["media"].reason or "")
    await wait_channel(gateway.runtime, event["id"], "mobileapp", State.DELIVERED)
    assert [p.content for p in app.pushes] == ["Photo\n(1 attachment could not be fetched)"]
    (item,) = pushed.payload["data"]["payload"]["media"]
    hosted = telnyx.media_of(item["url"])
    assert hosted is not None and hosted.fetches == []


async def test_an_mms_from_the_api_goes_out_with_its_pictures_as_signed_media_urls(
        start_gateway: StartGateway, telnyx: TelnyxSimulator, app: MobileAppSimulator,
        smtp: SmtpServer) -> None:
    gateway = await _start(start_gateway, telnyx, app, smtp)
    pictures = [png(4), png(5)]
    message_id = await send_mms(gateway, API_TOKEN, OURS, CUSTOMER, pictures)
    await wait_channel(gateway.runtime, message_id, "telnyx", State.ACCEPTED)

    (request,) = telnyx.send_requests
    assert request.body["type"] == "MMS" and request.body["text"] == "Your invoice"
    links = request.body["media_urls"]
    assert len(links) == 2 and all(link.startswith(f"{gateway.url}/media/") for link in links)
    (sent,) = telnyx.sent_messages
    # Telnyx fetches each picture from the gateway: the same bytes.
    await wait_until(lambda: len(telnyx.sent_media[sent["id"]]) == 2,
                     message="Telnyx's fetches")
    assert [(status, sha256(data)) for _, status, data in telnyx.sent_media[sent["id"]]] \
        == [(200, sha256(data)) for data in pictures]
    result = await telnyx.push_receipt(f"{gateway.url}/webhook/telnyx", sent["id"],
                                       "delivered")
    assert result.status == 200, result.body
    await wait_channel(gateway.runtime, message_id, "telnyx", State.DELIVERED)


async def test_without_public_links_an_mms_is_refused_whole_not_sent_as_text(
        start_gateway: StartGateway, telnyx: TelnyxSimulator, app: MobileAppSimulator,
        smtp: SmtpServer) -> None:
    gateway = await _start(start_gateway, telnyx, app, smtp, PBXSMS_PUBLIC_URL="")
    message_id = await send_mms(gateway, API_TOKEN, OURS, CUSTOMER, [png(6)])
    record = await wait_channel(gateway.runtime, message_id, "telnyx", State.FAILED)
    assert [h.error_code for h in record.history if h.state == State.FAILED] == \
        ["NO_MEDIA_LINKS"]
    assert "PBXSMS_PUBLIC_URL unset" in (record.channels["telnyx"].reason or "")
    assert telnyx.send_requests == []


def test_media_urls_read_each_item_and_a_malformed_item_is_refused() -> None:
    items = [{"url": "https://media.example/a.jpg", "content_type": "image/jpeg",
              "size": 10, "hash_sha256": "00"}, {"url": "https://media.example/b.png"}]
    assert media_urls(items) == ["https://media.example/a.jpg", "https://media.example/b.png"]
    assert media_urls(None) == [] and media_urls([]) == []
    for bad, field in (({"url": "x"}, "data.payload.media"),
                       ([{"content_type": "image/png"}], "data.payload.media[0].url")):
        with pytest.raises(Refusal) as refused:
            media_urls(bad)
        assert refused.value.field == field
