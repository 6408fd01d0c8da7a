"""A gateway wired to the ClickSend simulator (and its media host), the app and SMTP."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from pbxsms.core.model.events import InboundMessage
from pbxsms.core.serve.runtime import Runtime
from pbxsms.sim.clicksend import ClickSendSimulator
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.helpers import free_port, wait_until
from tests.support.delivery import ORG, delivery_env
from tests.support.gateway import Gateway
from tests.support.smtp import SmtpServer

StartGateway = Callable[..., Awaitable[Gateway]]

CUSTOMER = "+61422222222"
NUMBER = "+61411111111"
TOKEN = "cs-secret"
SECRET = "media-link-secret"
API_TOKEN = "api-token"

TOML = f"""
[plugins]
enabled = ["clicksend", "email", "mobileapp"]

[bus]
backoff_initial = "50ms"
backoff_max = "500ms"
max_deliver = 5

[[numbers]]
number = "{NUMBER}"
provider = "clicksend"
extension = "201"
domain = "pbx.example.com"
email = ["desk@example.com"]
mobileapp_org = "{ORG}"
"""


async def start(start_gateway: StartGateway, clicksend: ClickSendSimulator,
                app: MobileAppSimulator, smtp: SmtpServer, **more: str) -> Gateway:
    port = free_port()
    env = delivery_env(app, smtp, CLICKSEND_USERNAME="pbx-user", CLICKSEND_API_KEY="pbx-key",
                      CLICKSEND_BASE_URL=clicksend.base_url, CLICKSEND_WEBHOOK_TOKEN=TOKEN,
                      CLICKSEND_MEDIA_SIMULATOR=clicksend.base_url,
                      PBXSMS_HTTP_PORT=str(port), PBXSMS_PUBLIC_URL=f"http://127.0.0.1:{port}",
                      PBXSMS_MEDIA_URL_SECRET=SECRET, PBXSMS_API_TOKEN=API_TOKEN,
                      PBXSMS_MEDIA_FETCH_ATTEMPTS="2", **more)
    return await start_gateway(toml=TOML, env=env)


def webhook(gateway: Gateway) -> str:
    return f"{gateway.url}/webhook/clicksend/sms?token={TOKEN}"


async def follow_up(runtime: Runtime, message_id: str, timeout: float = 15.0
                    ) -> InboundMessage:
    """The `.media` follow-up of an inbound message, waiting for it."""
    found: list[InboundMessage] = []

    async def stored() -> bool:
        try:
            msg = await runtime.js.get_last_msg(runtime.stream, "sms.inbound.clicksend.media")
        except Exception:
            return False
        event = InboundMessage.model_validate_json(msg.data or b"")
        if event.id != message_id:
            return False
        found.append(event)
        return True

    await wait_until(stored, timeout, f"the media follow-up of {message_id}")
    return found[-1]


def answer_id(body: str) -> str:
    value = json.loads(body)["id"]
    assert isinstance(value, str)
    return value
