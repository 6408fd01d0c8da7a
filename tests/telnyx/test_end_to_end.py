"""Telnyx end to end with real parts: a signed inbound webhook reaches the app and the email;
the app's reply leaves through Telnyx from the texted number; its receipt marks it delivered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pbxsms.sim.mobileapp import MobileAppSimulator
from pbxsms.sim.telnyx import TelnyxSimulator
from tests.helpers import wait_until
from tests.support.carriers import reaches_app_and_email
from tests.support.delivery import HOOK_TOKEN, delivery_env
from tests.support.gateway import Gateway
from tests.support.smtp import SmtpServer
from tests.support.telnyx import (
    API_KEY,
    CUSTOMER,
    ORG,
    OURS,
    send,
    settled,
    telnyx_env,
    toml,
)

StartGateway = Callable[..., Awaitable[Gateway]]


async def test_inbound_to_app_and_email_then_the_reply_out_and_its_receipt(
        start_gateway: StartGateway, telnyx: TelnyxSimulator, app: MobileAppSimulator,
        smtp: SmtpServer) -> None:
    gateway = await start_gateway(toml=toml('"telnyx", "email", "mobileapp"'),
                                  env={**delivery_env(app, smtp), **telnyx_env(telnyx)})
    hook = f"{gateway.url}/webhook/telnyx"

    pushed = await telnyx.push_inbound(hook, CUSTOMER, OURS, "Table for 4 at 8 tonight?")
    assert pushed.status == 200, pushed.body

    await reaches_app_and_email(gateway, app, smtp, CUSTOMER, OURS,
                                "Table for 4 at 8 tonight?")

    # The reply from the app leaves through Telnyx, from the number the customer texted.
    answer = await app.reply(f"{gateway.url}/webhook/ringotel", HOOK_TOKEN, "201", CUSTOMER,
                             "Yes, booked for 8", ORG, messageid="rt-1")
    assert answer.status == 200
    await wait_until(lambda: len(telnyx.sent_messages) == 1, message="the Telnyx send")
    (sent,) = telnyx.sent_messages
    assert (sent["from"]["phone_number"], sent["to"][0]["phone_number"], sent["text"]) == (
        OURS, CUSTOMER, "Yes, booked for 8")
    (request,) = telnyx.send_requests
    assert request.authorization == f"Bearer {API_KEY}"
    assert request.body == {"from": OURS, "to": CUSTOMER, "text": "Yes, booked for 8",
                            "type": "SMS", "messaging_profile_id": telnyx.profile_id}
    # The simulator notes the send before it answers: the gateway stores Telnyx's id after.
    reply_id: str | None = None

    async def stored() -> bool:
        nonlocal reply_id
        reply_id = await gateway.runtime.status.find_by_provider_id("telnyx", sent["id"])
        return reply_id is not None

    await wait_until(stored, message="the reply's Telnyx id")
    assert reply_id is not None
    await settled(gateway, reply_id, "accepted")

    # Telnyx's receipts: sent, then finalized delivered; a late `sent` changes nothing.
    assert (await telnyx.push_receipt(hook, sent["id"], "sent")).status == 200
    await settled(gateway, reply_id, "sent")
    delivered = await telnyx.push_receipt(hook, sent["id"], "delivered")
    assert delivered.status == 200 and '"accepted"' in delivered.body
    await settled(gateway, reply_id, "delivered")
    late = await telnyx.push_receipt(hook, sent["id"], "sent")
    assert late.status == 200 and '"duplicate"' in late.body
    record = await settled(gateway, reply_id, "delivered")
    assert record.provider_message_id == sent["id"]


async def test_receipts_follow_the_profile_webhook_without_help(
        start_gateway: StartGateway, telnyx: TelnyxSimulator) -> None:
    # The simulator pushes message.sent and message.finalized itself, as Telnyx does to
    # the messaging profile's webhook URL.
    gateway = await start_gateway(toml=toml(), env=telnyx_env(telnyx))
    telnyx.webhook_url = f"{gateway.url}/webhook/telnyx"
    telnyx.final_status = "delivery_failed"
    message_id = await send(gateway, "will not arrive")
    record = await settled(gateway, message_id, "failed")
    assert [entry.state.value for entry in record.history][-1] == "failed"
