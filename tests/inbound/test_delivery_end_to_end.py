"""Issue 6 acceptance, end to end with real parts: ClickSend webhook → email and app push;
the app's reply → ClickSend sends from the number the customer texted.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable

from pbxsms.core.model.events import State
from pbxsms.sim.clicksend import ClickSendSimulator
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.helpers import wait_until
from tests.support.delivery import HOOK_TOKEN, ORG, SENDER, delivery_env, wait_channel
from tests.support.gateway import Gateway
from tests.support.smtp import SmtpServer

StartGateway = Callable[..., Awaitable[Gateway]]

CUSTOMER = "+61422222222"
FRONT, BOOKINGS = "+61411111111", "+61433333333"  # both ring extension 201

NUMBERS = f"""
[plugins]
enabled = ["clicksend", "email", "mobileapp"]

[bus]
backoff_initial = "50ms"
backoff_max = "1s"
max_deliver = 3

[[numbers]]
number = "{FRONT}"
provider = "clicksend"
extension = "201"
domain = "pbx.example.com"
email = ["front@example.com"]
mobileapp_org = "{ORG}"

[[numbers]]
number = "{BOOKINGS}"
provider = "clicksend"
extension = "201"
domain = "pbx.example.com"
email = ["bookings@example.com"]
mobileapp_org = "{ORG}"
"""


async def test_clicksend_to_app_and_email_and_the_reply_back(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer
) -> None:
    async with ClickSendSimulator() as clicksend:
        clicksend.add_account("pbx-user", "pbx-key")
        env = delivery_env(app, smtp, CLICKSEND_USERNAME="pbx-user",
                          CLICKSEND_API_KEY="pbx-key", CLICKSEND_BASE_URL=clicksend.base_url,
                          CLICKSEND_WEBHOOK_TOKEN="cs-secret")
        gateway = await start_gateway(toml=NUMBERS, env=env)

        pushed = await clicksend.push_inbound(
            f"{gateway.url}/webhook/clicksend/sms?token=cs-secret", CUSTOMER, BOOKINGS,
            "Table for 4 at 8 tonight?", webhook_type="json")
        assert pushed.status == 200

        # The push into extension 201's app, with the customer's number and text.
        await wait_until(lambda: len(app.pushes) == 1, message="the app push")
        (push,) = app.pushes
        assert (push.orgid, push.from_, push.to, push.content) == (
            ORG, CUSTOMER, "201", "Table for 4 at 8 tonight?")
        # The email copy to the texted number's address only.
        await wait_until(lambda: len(smtp.mailbox.mails) == 1, message="the email copy")
        (mail,) = smtp.mailbox.mails
        assert mail.rcpt_tos == ["bookings@example.com"] and mail.mail_from == SENDER
        assert mail.message["Subject"] == f"SMS from {CUSTOMER} to {BOOKINGS}"
        text = mail.message.get_body(("plain",))
        assert text is not None and "Table for 4 at 8 tonight?" in text.get_content()
        inbound_id = await gateway.runtime.status.find_by_provider_id("mobileapp",
                                                                      push.messageid)
        assert inbound_id is not None
        await wait_channel(gateway.runtime, inbound_id, "email", State.DELIVERED)

        # The reply from the app goes out through ClickSend from the number texted.
        answer = await app.reply(f"{gateway.url}/webhook/ringotel", HOOK_TOKEN, "201",
                                 CUSTOMER, "Yes, booked for 8", ORG, messageid="rt-1")
        assert answer.status == 200
        await wait_until(lambda: len(clicksend.sent_messages) == 1, message="the ClickSend send")
        (sent,) = clicksend.sent_messages
        assert (sent["from"], sent["to"], sent["body"]) == (BOOKINGS, CUSTOMER,
                                                            "Yes, booked for 8")
        (request,) = clicksend.send_requests
        expected = base64.b64encode(b"pbx-user:pbx-key").decode()
        assert request.authorization == f"Basic {expected}"
