"""What the FreeSWITCH tests share: the gateway's settings, numbers and waits."""

from __future__ import annotations

from pbxsms.core.model.events import State
from pbxsms.core.serve.runtime import Runtime
from pbxsms.sim.clicksend import ClickSendSimulator
from pbxsms.sim.freeswitch import FakeFreeSwitch
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.support.delivery import ORG, delivery_env, wait_channel
from tests.support.freeswitch import ESL_PASSWORD, esl_env
from tests.support.smtp import SmtpServer

__all__ = ["ESL_PASSWORD"]  # the tests of this folder take it from here
DOMAIN = "pbx.example.com"
CUSTOMER = "+61422222222"
FRONT, BOOKINGS = "+61411111111", "+61433333333"  # both ring extension 201
CS_USER, CS_KEY, CS_TOKEN = "pbx-user", "pbx-key", "cs-secret"
# Newlines, CRLF, `|`, emoji, `%`-escapes and other characters ESL encodes in headers.
TRICKY = "Table for 4?\nAt 8 | or 9 😀🎉\r\nCafé %41 + & = ; : <b>\n\nthanks"


def toml(retry_for: str = "30s", report_timeout: str = "2s", sip: bool = True) -> str:
    flag = "true" if sip else "false"
    return f"""
[plugins]
enabled = ["clicksend", "email", "mobileapp", "freeswitch"]

[bus]
backoff_initial = "50ms"
backoff_max = "300ms"
max_deliver = 5

[freeswitch]
retry_for = "{retry_for}"
report_timeout = "{report_timeout}"

[[numbers]]
number = "{FRONT}"
provider = "clicksend"
extension = "201"
domain = "{DOMAIN}"
email = ["front@example.com"]
mobileapp_org = "{ORG}"
sip = {flag}

[[numbers]]
number = "{BOOKINGS}"
provider = "clicksend"
extension = "201"
domain = "{DOMAIN}"
email = ["bookings@example.com"]
mobileapp_org = "{ORG}"
sip = {flag}
"""


def env(app: MobileAppSimulator, smtp: SmtpServer, fake: FakeFreeSwitch,
        clicksend: ClickSendSimulator | None = None, password: str = ESL_PASSWORD,
        **more: str) -> dict[str, str]:
    values = delivery_env(app, smtp, **esl_env(fake, password), CLICKSEND_USERNAME=CS_USER,
                          CLICKSEND_API_KEY=CS_KEY, CLICKSEND_WEBHOOK_TOKEN=CS_TOKEN, **more)
    if clicksend is not None:
        values["CLICKSEND_BASE_URL"] = clicksend.base_url
    return values


async def other_channels_delivered(runtime: Runtime, message_id: str) -> None:
    """The app push and the email copy, whatever happened on SIP."""
    await wait_channel(runtime, message_id, "mobileapp", State.DELIVERED)
    await wait_channel(runtime, message_id, "email", State.DELIVERED)
