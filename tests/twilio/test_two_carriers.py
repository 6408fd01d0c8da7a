"""Two numbers on two carriers in one gateway, texted at once: each reply leaves through
its own carrier, from the number that was texted."""

from __future__ import annotations

from pbxsms.sim.clicksend import ClickSendSimulator
from pbxsms.sim.mobileapp import MobileAppSimulator
from pbxsms.sim.twilio import TwilioSimulator
from tests.helpers import wait_until
from tests.support.carriers import numbers_toml, text_both_then_reply
from tests.twilio.support import OUR_NUMBER, SMS_URL, StartGateway

CLICKSEND_NUMBER = "+61411111111"
ON_CLICKSEND, ON_TWILIO = "+61422222222", "+14155550123"  # two customers

TOML = ('[plugins]\nenabled = ["clicksend", "twilio", "email", "mobileapp"]\n'
        + numbers_toml((CLICKSEND_NUMBER, "clicksend", "201"), (OUR_NUMBER, "twilio", "201")))


async def test_each_reply_leaves_through_the_carrier_of_the_number_texted(
        start_twilio_gateway: StartGateway, twilio: TwilioSimulator,
        app: MobileAppSimulator) -> None:
    async with ClickSendSimulator() as clicksend:
        clicksend.add_account("pbx-user", "pbx-key")
        gateway = await start_twilio_gateway(
            toml=TOML, CLICKSEND_USERNAME="pbx-user", CLICKSEND_API_KEY="pbx-key",
            CLICKSEND_BASE_URL=clicksend.base_url, CLICKSEND_WEBHOOK_TOKEN="cs-secret")
        await text_both_then_reply(gateway, app, [
            clicksend.push_inbound(f"{gateway.url}/webhook/clicksend/sms?token=cs-secret",
                                   ON_CLICKSEND, CLICKSEND_NUMBER, "Hi from Sydney",
                                   webhook_type="json"),
            twilio.push_inbound(SMS_URL, ON_TWILIO, OUR_NUMBER, "Hi from San Francisco")], [
            ("201", ON_CLICKSEND, "Hello Sydney"),
            ("201", ON_TWILIO, "Hello San Francisco")])
        await wait_until(lambda: len(clicksend.sent_messages) == 1 and len(twilio.sent) == 1,
                         message="one send through each carrier")
        (by_clicksend,) = clicksend.sent_messages
        (by_twilio,) = twilio.sent
        assert (by_clicksend["from"], by_clicksend["to"], by_clicksend["body"]) == (
            CLICKSEND_NUMBER, ON_CLICKSEND, "Hello Sydney")
        assert (by_twilio["from"], by_twilio["to"], by_twilio["body"]) == (
            OUR_NUMBER, ON_TWILIO, "Hello San Francisco")
