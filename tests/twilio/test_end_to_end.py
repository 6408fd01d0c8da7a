"""Issue 15 acceptance for Twilio, with real parts: a text to our Twilio number reaches
the app and the email; the app's reply leaves through Twilio from the number texted; its
status callbacks mark it delivered, and a late one never moves it back."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

from pbxsms.core.model.events import State
from pbxsms.sim.mobileapp import MobileAppSimulator
from pbxsms.sim.twilio import TwilioSimulator
from tests.helpers import wait_until
from tests.support.carriers import reaches_app_and_email
from tests.support.delivery import HOOK_TOKEN, ORG, wait_channel
from tests.support.gateway import Gateway
from tests.support.smtp import SmtpServer
from tests.twilio.support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CUSTOMER,
    OUR_NUMBER,
    PUBLIC_URL,
    SMS_URL,
    STATUS_PATH,
    StartGateway,
    stored,
)


async def test_twilio_to_app_and_email_and_the_reply_back_delivered(
        start_twilio_gateway: StartGateway, twilio: TwilioSimulator, app: MobileAppSimulator,
        smtp: SmtpServer) -> None:
    gateway = await start_twilio_gateway()

    pushed = await twilio.push_inbound(SMS_URL, CUSTOMER, OUR_NUMBER, "Table for 4 at 8?")
    assert pushed.status == 200, pushed.body
    assert pushed.body == '<?xml version="1.0" encoding="UTF-8"?><Response/>'
    [(subject, event)] = await stored(gateway, "sms.inbound.")
    assert subject == "sms.inbound.twilio"
    assert event["provider_message_id"] == dict(pushed.params)["MessageSid"]
    assert event["extra"]["AccountSid"] == ACCOUNT_SID

    # Into extension 201's app, and a copy by email.
    await reaches_app_and_email(gateway, app, smtp, CUSTOMER, OUR_NUMBER, "Table for 4 at 8?",
                                email="desk@example.com")

    # The reply leaves through Twilio, from the number the customer texted.
    answer = await app.reply(f"{gateway.url}/webhook/ringotel", HOOK_TOKEN, "201", CUSTOMER,
                             "Yes, booked for 8", ORG, messageid="rt-1")
    assert answer.status == 200
    await wait_until(lambda: len(twilio.sent) == 1, message="the Twilio send")
    (sent,) = twilio.sent
    assert (sent["from"], sent["to"], sent["body"]) == (OUR_NUMBER, CUSTOMER,
                                                        "Yes, booked for 8")
    (request,) = twilio.create_requests
    expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert request.authorization == f"Basic {expected}"
    callback = request.form["StatusCallback"][0]
    assert callback.startswith(f"{PUBLIC_URL}{STATUS_PATH}?id=")
    ours = parse_qs(urlsplit(callback).query)["id"][0]
    await wait_channel(gateway.runtime, ours, "twilio", State.ACCEPTED)

    # Its status callbacks, signed over the public URL, reach it through the proxy.
    for status in ("sent", "delivered"):
        result = await twilio.push_status(sent["sid"], status)
        assert result.status == 204, result.body
    record = await wait_channel(gateway.runtime, ours, "twilio", State.DELIVERED)
    assert record.provider_message_id == sent["sid"]

    # A late failure report changes nothing: delivered is final.
    late = await twilio.push_status(sent["sid"], "undelivered", error_code=30003)
    assert late.status == 204
    await wait_until(lambda: _history_has(gateway, ours, State.FAILED), message="the late event")
    current = await gateway.runtime.status.get(ours)
    assert current is not None and current.state == State.DELIVERED


async def _history_has(gateway: Gateway, message_id: str, state: State) -> bool:
    record = await gateway.runtime.status.get(message_id)
    return record is not None and any(entry.state == state for entry in record.history)
