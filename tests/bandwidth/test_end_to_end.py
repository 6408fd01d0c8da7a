"""Bandwidth end to end with real parts: an authenticated callback reaches the app and the
email; the app's reply leaves through Bandwidth from the texted number (OAuth2 token, our id
as `tag`); its `message-delivered` callback marks it delivered."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pbxsms.sim.bandwidth import BandwidthSimulator
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.helpers import wait_until
from tests.support.bandwidth import CUSTOMER, ORG, OURS, bandwidth_env, toml
from tests.support.carriers import reaches_app_and_email, settled
from tests.support.delivery import HOOK_TOKEN, delivery_env
from tests.support.gateway import Gateway
from tests.support.smtp import SmtpServer

StartGateway = Callable[..., Awaitable[Gateway]]


async def test_inbound_to_app_and_email_then_the_reply_out_and_its_receipt(
        start_gateway: StartGateway, bandwidth: BandwidthSimulator, app: MobileAppSimulator,
        smtp: SmtpServer) -> None:
    gateway = await start_gateway(toml=toml('"bandwidth", "email", "mobileapp"'),
                                  env={**delivery_env(app, smtp), **bandwidth_env(bandwidth)})
    hook = f"{gateway.url}/webhook/bandwidth"

    pushed = await bandwidth.push_inbound(hook, CUSTOMER, OURS, "Table for 4 at 8 tonight?")
    assert pushed.status == 200, pushed.body

    await reaches_app_and_email(gateway, app, smtp, CUSTOMER, OURS,
                                "Table for 4 at 8 tonight?")

    answer = await app.reply(f"{gateway.url}/webhook/ringotel", HOOK_TOKEN, "201", CUSTOMER,
                             "Yes, booked for 8", ORG, messageid="rt-1")
    assert answer.status == 200
    await wait_until(lambda: len(bandwidth.sent_messages) == 1, message="the Bandwidth send")
    (sent,) = bandwidth.sent_messages
    assert (sent["from"], sent["to"], sent["text"]) == (OURS, [CUSTOMER], "Yes, booked for 8")
    reply_id = sent["tag"]
    (request,) = bandwidth.send_requests
    assert request.path == f"/api/v2/users/{bandwidth.account_id}/messages"
    assert request.body == {"applicationId": bandwidth.application_id, "to": [CUSTOMER],
                            "from": OURS, "text": "Yes, booked for 8", "tag": reply_id}
    assert (request.authorization or "").startswith("Bearer ")
    record = await settled(gateway, reply_id, "accepted")
    assert record.provider_message_id == sent["id"]

    delivered = await bandwidth.push_receipt(hook, sent["id"], "message-delivered")
    assert delivered.status == 200 and '"accepted"' in delivered.body
    await settled(gateway, reply_id, "delivered")
    again = await bandwidth.push_receipt(hook, sent["id"], "message-delivered")
    assert again.status == 200 and '"duplicate"' in again.body
