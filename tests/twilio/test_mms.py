"""Inbound MMS through Twilio: two pictures posted as `MediaUrl{N}` reach the email as
attachments and the app as signed links, fetched with the account's credentials from
Twilio's Media URLs and their CDN redirect."""

from __future__ import annotations

import base64

import pytest

from pbxsms.core.model.events import State
from pbxsms.core.plugin_api import Refusal
from pbxsms.plugins.twilio.inbound import media_urls
from pbxsms.sim.mobileapp import MobileAppSimulator
from pbxsms.sim.twilio import TwilioSimulator
from tests.helpers import wait_until
from tests.support.delivery import wait_channel
from tests.support.media import pictures_delivered, png, send_mms, sha256
from tests.support.smtp import SmtpServer
from tests.twilio.support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CUSTOMER,
    OUR_NUMBER,
    PUBLIC_URL,
    SMS_URL,
    StartGateway,
    stored,
)


async def test_two_pictures_reach_the_email_and_the_app(
        start_twilio_gateway: StartGateway, twilio: TwilioSimulator, app: MobileAppSimulator,
        smtp: SmtpServer) -> None:
    gateway = await start_twilio_gateway(TWILIO_MEDIA_SIMULATOR=twilio.base_url,
                                         PBXSMS_MEDIA_URL_SECRET="media-link-secret")
    pictures = [png(1), png(2)]
    pushed = await twilio.push_inbound(SMS_URL, CUSTOMER, OUR_NUMBER, "Here is the damage",
                                       media=[(data, "image/png") for data in pictures])
    assert pushed.status == 200, pushed.body
    params = dict(pushed.params)
    assert params["NumMedia"] == "2" and params["MessageSid"].startswith("MM")
    [event] = [e for subject, e in await stored(gateway, "sms.inbound.")
               if subject == "sms.inbound.twilio.mms"]
    assert event["media_urls"] == [params["MediaUrl0"], params["MediaUrl1"]]

    await pictures_delivered(gateway, event["id"], pictures, "Here is the damage", smtp, app,
                             public_url=PUBLIC_URL)
    # Each Media URL was fetched once, with the account's Basic credentials.
    basic = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    for name in ("MediaUrl0", "MediaUrl1"):
        hosted = twilio.media_of(params[name])
        assert hosted is not None
        assert [auth for _, auth in hosted.fetches] == [basic]


async def test_media_off_the_allow_list_are_refused_and_the_text_delivered(
        start_twilio_gateway: StartGateway, twilio: TwilioSimulator, app: MobileAppSimulator,
        smtp: SmtpServer) -> None:
    # No simulator allowance: the simulator's http links on loopback are not Twilio's.
    gateway = await start_twilio_gateway(PBXSMS_MEDIA_URL_SECRET="media-link-secret",
                                         PBXSMS_MEDIA_FETCH_ATTEMPTS="2")
    pushed = await twilio.push_inbound(SMS_URL, CUSTOMER, OUR_NUMBER, "Photo",
                                       media=[(png(3), "image/png")])
    assert pushed.status == 200, pushed.body
    [event] = [e for subject, e in await stored(gateway, "sms.inbound.")
               if subject == "sms.inbound.twilio.mms"]
    record = await wait_channel(gateway.runtime, event["id"], "media", State.FAILED,
                                timeout=20)
    assert "http:// is refused: only https" in (record.channels["media"].reason or "")
    await wait_channel(gateway.runtime, event["id"], "mobileapp", State.DELIVERED)
    assert [p.content for p in app.pushes] == ["Photo\n(1 attachment could not be fetched)"]
    hosted = twilio.media_of(dict(pushed.params)["MediaUrl0"])
    assert hosted is not None and hosted.fetches == []


async def test_an_mms_from_the_api_goes_out_with_each_picture_as_a_signed_media_url(
        start_twilio_gateway: StartGateway, twilio: TwilioSimulator) -> None:
    gateway = await start_twilio_gateway(PBXSMS_MEDIA_URL_SECRET="media-link-secret")
    pictures = [png(4), png(5)]
    message_id = await send_mms(gateway, "api-token", OUR_NUMBER, CUSTOMER, pictures)
    await wait_channel(gateway.runtime, message_id, "twilio", State.ACCEPTED)

    (request,) = twilio.create_requests
    assert request.form["Body"] == ["Your invoice"]
    links = request.form["MediaUrl"]
    assert len(links) == 2 and all(link.startswith(f"{PUBLIC_URL}/media/") for link in links)
    (sent,) = twilio.sent
    assert sent["sid"].startswith("MM") and sent["num_media"] == "2"
    # Twilio fetches each picture from the gateway (through its TLS proxy): the same bytes.
    await wait_until(lambda: len(twilio.sent_media[sent["sid"]]) == 2,
                     message="Twilio's fetches")
    assert [(status, sha256(data)) for _, status, data in twilio.sent_media[sent["sid"]]] \
        == [(200, sha256(data)) for data in pictures]

    result = await twilio.push_status(sent["sid"], "delivered")
    assert result.status == 204, result.body
    await wait_channel(gateway.runtime, message_id, "twilio", State.DELIVERED)


def test_media_urls_follow_num_media_and_a_bad_count_is_refused() -> None:
    fields = {"NumMedia": "2", "MediaUrl0": "https://api.twilio.com/a",
              "MediaUrl1": "https://api.twilio.com/b", "MediaUrl2": "https://evil.example/c"}
    assert media_urls(fields) == ["https://api.twilio.com/a", "https://api.twilio.com/b"]
    assert media_urls({"NumMedia": "0", "MediaUrl0": "https://api.twilio.com/a"}) == []
    assert media_urls({"Body": "no media fields"}) == []
    with pytest.raises(Refusal) as refused:
        media_urls({"NumMedia": "two"})
    assert refused.value.field == "NumMedia"
