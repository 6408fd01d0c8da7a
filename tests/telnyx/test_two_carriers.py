"""Two numbers on two carriers (ClickSend and Telnyx) in one gateway, texted at once: each
reply leaves through the carrier of the number that was texted."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pbxsms.sim.clicksend import ClickSendSimulator
from pbxsms.sim.mobileapp import MobileAppSimulator
from pbxsms.sim.telnyx import TelnyxSimulator
from tests.helpers import wait_until
from tests.support.carriers import BUS, numbers_toml, text_both_then_reply
from tests.support.delivery import delivery_env
from tests.support.gateway import Gateway
from tests.support.smtp import SmtpServer
from tests.support.telnyx import telnyx_env

StartGateway = Callable[..., Awaitable[Gateway]]

CS_NUMBER, TX_NUMBER = "+61411111111", "+13125550100"
CS_CUSTOMER, TX_CUSTOMER = "+61422222222", "+17735550123"

TOML = ('[plugins]\nenabled = ["clicksend", "telnyx", "email", "mobileapp"]\n' + BUS
        + numbers_toml((CS_NUMBER, "clicksend", "201"), (TX_NUMBER, "telnyx", "202")))


async def test_each_reply_leaves_through_its_own_carrier(
        start_gateway: StartGateway, telnyx: TelnyxSimulator, app: MobileAppSimulator,
        smtp: SmtpServer) -> None:
    async with ClickSendSimulator([("cs-user", "cs-key")]) as clicksend:
        env = {**delivery_env(app, smtp), **telnyx_env(telnyx), "CLICKSEND_USERNAME": "cs-user",
               "CLICKSEND_API_KEY": "cs-key", "CLICKSEND_BASE_URL": clicksend.base_url,
               "CLICKSEND_WEBHOOK_TOKEN": "cs-secret"}
        gateway = await start_gateway(toml=TOML, env=env)

        await text_both_then_reply(gateway, app, [
            clicksend.push_inbound(f"{gateway.url}/webhook/clicksend/sms?token=cs-secret",
                                   CS_CUSTOMER, CS_NUMBER, "to clicksend", webhook_type="json"),
            telnyx.push_inbound(f"{gateway.url}/webhook/telnyx", TX_CUSTOMER, TX_NUMBER,
                                "to telnyx")], [
            ("201", CS_CUSTOMER, "reply via clicksend"),
            ("202", TX_CUSTOMER, "reply via telnyx")])
        assert {(p.to, p.from_, p.content) for p in app.pushes} == {
            ("201", CS_CUSTOMER, "to clicksend"), ("202", TX_CUSTOMER, "to telnyx")}
        await wait_until(lambda: len(clicksend.sent_messages) == 1
                         and len(telnyx.sent_messages) == 1, message="both sends")
        (cs_sent,) = clicksend.sent_messages
        assert (cs_sent["from"], cs_sent["to"], cs_sent["body"]) == (
            CS_NUMBER, CS_CUSTOMER, "reply via clicksend")
        (tx_sent,) = telnyx.sent_messages
        assert (tx_sent["from"]["phone_number"], tx_sent["to"][0]["phone_number"],
                tx_sent["text"]) == (TX_NUMBER, TX_CUSTOMER, "reply via telnyx")
