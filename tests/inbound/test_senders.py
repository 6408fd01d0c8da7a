"""Short codes and sender names: accepted, kept as sent, delivered, listed with their type;
a reply to a name that cannot receive texts is refused at send time."""

from __future__ import annotations

from typing import Literal

from aiohttp import ClientSession

from pbxsms.core.model.events import State
from pbxsms.sim.clicksend import ClickSendSimulator
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.helpers import wait_until
from tests.support.delivery import ORG, delivery_env, wait_channel
from tests.support.gateway import StartGateway
from tests.support.smtp import SmtpServer

OURS = "+61411111111"
TOKEN = "api-t0ken"
NUMBERS = f"""
[plugins]
enabled = ["clicksend", "email", "mobileapp"]

[[numbers]]
number = "{OURS}"
provider = "clicksend"
extension = "201"
domain = "pbx.example.com"
email = ["front@example.com"]
mobileapp_org = "{ORG}"
"""


async def test_short_code_and_name_are_delivered_and_a_reply_to_a_name_is_refused(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer
) -> None:
    async with ClickSendSimulator() as clicksend:
        clicksend.add_account("pbx-user", "pbx-key")
        env = delivery_env(app, smtp, CLICKSEND_USERNAME="pbx-user",
                           CLICKSEND_API_KEY="pbx-key", CLICKSEND_BASE_URL=clicksend.base_url,
                           CLICKSEND_WEBHOOK_TOKEN="cs-secret", PBXSMS_API_TOKEN=TOKEN)
        gateway = await start_gateway(toml=NUMBERS, env=env)
        url = f"{gateway.url}/webhook/clicksend/sms?token=cs-secret"
        shapes: tuple[tuple[str, Literal["post", "json", "get"]], ...] = (
            ("72345", "post"), ("GOOGLE", "json"), ("202FLOWERS", "get"))
        for sender, shape in shapes:
            pushed = await clicksend.push_inbound(
                url, sender, OURS, f"Your code is 1234 ({sender})", webhook_type=shape)
            assert pushed.status == 200, (sender, pushed.body)

        await wait_until(lambda: len(app.pushes) == 3, message="three app pushes")
        assert sorted(push.from_ for push in app.pushes) == ["202FLOWERS", "72345", "GOOGLE"]
        await wait_until(lambda: len(smtp.mailbox.mails) == 3, message="three emails")
        subjects = sorted(mail.message["Subject"] for mail in smtp.mailbox.mails)
        assert subjects == [f"SMS from {s} to {OURS}" for s in ("202FLOWERS", "72345",
                                                                  "GOOGLE")]
        runtime = gateway.runtime
        for push in app.pushes:
            found = await runtime.status.find_by_provider_id("mobileapp", push.messageid)
            assert found is not None
            await wait_channel(runtime, found, "email", State.DELIVERED)

        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with ClientSession(headers=headers) as http:
            async with http.get(f"{gateway.url}/api/v1/messages",
                                params={"status": "delivered"}) as response:
                assert response.status == 200
                listed = (await response.json())["messages"]
            assert sorted(m["sender_type"] for m in listed) == [
                "alphanumeric", "alphanumeric", "short_code"]

            async with http.post(f"{gateway.url}/api/v1/messages",
                                 json={"from": OURS, "to": "GOOGLE", "body": "thanks"}
                                 ) as response:
                assert response.status == 422
                refused = await response.json()
        assert refused["field"] == "to"
        assert "cannot receive texts" in refused["error"]
        assert clicksend.sent_messages == []
