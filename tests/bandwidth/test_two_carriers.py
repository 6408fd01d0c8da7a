"""Two numbers on two new carriers (Telnyx and Bandwidth) in one gateway, texted at once:
each reply leaves through the carrier of the number that was texted."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pbxsms.sim.bandwidth import BandwidthSimulator
from pbxsms.sim.mobileapp import MobileAppSimulator
from pbxsms.sim.telnyx import TelnyxSimulator
from tests.helpers import wait_until
from tests.support.bandwidth import bandwidth_env
from tests.support.carriers import BUS, numbers_toml, text_both_then_reply
from tests.support.delivery import delivery_env
from tests.support.gateway import Gateway
from tests.support.smtp import SmtpServer
from tests.support.telnyx import API_KEY, telnyx_env

StartGateway = Callable[..., Awaitable[Gateway]]

BW_NUMBER, TX_NUMBER = "+19195550100", "+13125550100"
BW_CUSTOMER, TX_CUSTOMER = "+19195550123", "+17735550123"

TOML = ('[plugins]\nenabled = ["telnyx", "bandwidth", "email", "mobileapp"]\n' + BUS
        + numbers_toml((BW_NUMBER, "bandwidth", "201"), (TX_NUMBER, "telnyx", "202")))


async def test_each_reply_leaves_through_its_own_carrier(
        start_gateway: StartGateway, bandwidth: BandwidthSimulator, app: MobileAppSimulator,
        smtp: SmtpServer) -> None:
    async with TelnyxSimulator([API_KEY]) as telnyx:
        env = {**delivery_env(app, smtp), **telnyx_env(telnyx), **bandwidth_env(bandwidth)}
        gateway = await start_gateway(toml=TOML, env=env)
        await text_both_then_reply(gateway, app, [
            bandwidth.push_inbound(f"{gateway.url}/webhook/bandwidth", BW_CUSTOMER, BW_NUMBER,
                                   "to bandwidth"),
            telnyx.push_inbound(f"{gateway.url}/webhook/telnyx", TX_CUSTOMER, TX_NUMBER,
                                "to telnyx")], [
            ("201", BW_CUSTOMER, "reply via bandwidth"),
            ("202", TX_CUSTOMER, "reply via telnyx")])
        await wait_until(lambda: len(bandwidth.sent_messages) == 1
                         and len(telnyx.sent_messages) == 1, message="both sends")
        (bw_sent,) = bandwidth.sent_messages
        assert (bw_sent["from"], bw_sent["to"], bw_sent["text"]) == (
            BW_NUMBER, [BW_CUSTOMER], "reply via bandwidth")
        (tx_sent,) = telnyx.sent_messages
        assert (tx_sent["from"]["phone_number"], tx_sent["to"][0]["phone_number"],
                tx_sent["text"]) == (TX_NUMBER, TX_CUSTOMER, "reply via telnyx")
