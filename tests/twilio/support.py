"""What the Twilio tests share: the account, the numbers, and readers of what is stored."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from nats.js.errors import NotFoundError

from tests.support.delivery import ORG
from tests.support.gateway import Gateway

StartGateway = Callable[..., Awaitable[Gateway]]

ACCOUNT_SID = "AC" + "1234567890abcdef" * 2
AUTH_TOKEN = "twilio-auth-token-for-tests"
PUBLIC_URL = "https://sms.example.com"
SMS_URL = f"{PUBLIC_URL}/webhook/twilio/sms"
STATUS_PATH = "/webhook/twilio/status"
OUR_NUMBER = "+14155550100"  # ours on Twilio, rings extension 201
CUSTOMER = "+14155550199"


def numbers_toml(number: str = OUR_NUMBER, provider: str = "twilio") -> str:
    return f"""
[plugins]
enabled = ["twilio", "email", "mobileapp"]

[bus]
backoff_initial = "50ms"
backoff_max = "1s"
max_deliver = 3

[twilio]
reconcile_delay = 0
segments_per_second = 50

[[numbers]]
number = "{number}"
provider = "{provider}"
extension = "201"
domain = "pbx.example.com"
email = ["desk@example.com"]
mobileapp_org = "{ORG}"
"""


async def stored(gw: Gateway, prefix: str = "sms.") -> list[tuple[str, dict[str, Any]]]:
    """Every event on the stream whose subject starts with `prefix`: (subject, JSON)."""
    js = gw.runtime.js
    state = (await js.stream_info(gw.runtime.stream)).state
    found: list[tuple[str, dict[str, Any]]] = []
    if not state.messages:
        return found
    for seq in range(state.first_seq, state.last_seq + 1):
        try:
            msg = await js.get_msg(gw.runtime.stream, seq)
        except NotFoundError:
            continue
        subject = msg.subject or ""
        if subject.startswith(prefix) and msg.data is not None:
            found.append((subject, json.loads(msg.data)))
    return found
