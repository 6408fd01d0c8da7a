"""Issue 18 acceptance: a SIP phone's text to a customer leaves through ClickSend from the
number the customer texted; notifications and reports are not texts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pbxsms.core.health import metrics
from pbxsms.core.model.events import State
from pbxsms.sim.clicksend import ClickSendSimulator
from pbxsms.sim.freeswitch import FakeFreeSwitch
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.freeswitch.support import (
    BOOKINGS,
    CS_KEY,
    CS_TOKEN,
    CS_USER,
    CUSTOMER,
    DOMAIN,
    TRICKY,
    env,
    toml,
)
from tests.helpers import wait_until
from tests.support.gateway import Gateway
from tests.support.smtp import SmtpServer

StartGateway = Callable[..., Awaitable[Gateway]]

IMDN = ('<?xml version="1.0" encoding="UTF-8"?>\n<imdn xmlns="urn:ietf:params:xml:ns:imdn">'
        "<message-id>34jk324j</message-id><delivery-notification><status><delivered/>"
        "</status></delivery-notification></imdn>")


def counted(result: str) -> float:
    return float(metrics.WEBHOOKS.labels("freeswitch", "message", result)._value.get())


async def test_a_phones_text_is_sent_from_the_number_the_customer_texted_once(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer,
    fake: FakeFreeSwitch,
) -> None:
    fake.register("201", DOMAIN)
    async with ClickSendSimulator() as clicksend:
        clicksend.add_account(CS_USER, CS_KEY)
        # Two instances on the same FreeSWITCH: each hears every phone's text.
        first = await start_gateway(toml=toml(), env=env(app, smtp, fake, clicksend))
        await start_gateway(toml=toml(), env=env(app, smtp, fake, clicksend))
        await wait_until(lambda: fake.listeners == 2, 10, "both gateways on the socket")
        pushed = await clicksend.push_inbound(
            f"{first.url}/webhook/clicksend/sms?token={CS_TOKEN}", CUSTOMER, BOOKINGS,
            "Table for 4 at 8?", webhook_type="json")
        assert pushed.status == 200
        await wait_until(lambda: len(fake.delivered) == 1, 10, "the text on the phone")

        ignored, invalid = counted("ignored"), counted("invalid")
        # What phones and FreeSWITCH also send as MESSAGE: none of it is a text to send.
        await fake.phone_message("201", DOMAIN, CUSTOMER, IMDN, "message/imdn+xml")
        await fake.phone_message("201", DOMAIN, CUSTOMER, "<?xml version='1.0'?><x/>")
        await fake.phone_message("201", DOMAIN, CUSTOMER, "<isComposing/>",
                                 "application/im-iscomposing+xml")
        await fake.phone_message("201", DOMAIN, CUSTOMER, "Table for 4 at 8?",
                                 extra={"Delivery-Failure": "false", "Status": "Success"})
        await fake.phone_message("201", DOMAIN, CUSTOMER, "   ")
        # An extension texting another extension is not an SMS.
        await fake.phone_message("201", DOMAIN, "1002", "lunch?")
        # An extension without numbers has nothing to send from.
        await fake.phone_message("777", DOMAIN, CUSTOMER, "hello")
        await wait_until(lambda: counted("ignored") - ignored == 2 * 5
                         and counted("invalid") - invalid == 2 * 2, 10, "the others seen")

        await fake.phone_message("201", DOMAIN, CUSTOMER, TRICKY)
        await wait_until(lambda: len(clicksend.sent_messages) == 1, 10, "the ClickSend send")
        (sent,) = clicksend.sent_messages
        assert (sent["from"], sent["to"], sent["body"]) == (BOOKINGS, CUSTOMER, TRICKY)
        assert counted("duplicate") >= 1  # the second instance's copy, deduplicated
        # Taken like any send request: queued, then accepted by ClickSend.
        status = await first.runtime.status.get(sent["custom_string"])
        assert status is not None
        assert [h.state for h in status.history][:1] == [State.QUEUED]
        await wait_until(lambda: len(clicksend.send_requests) >= 1, 5, "the request")
        assert len(clicksend.sent_messages) == 1
