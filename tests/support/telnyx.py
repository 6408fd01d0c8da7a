"""What the Telnyx tests share: the gateway's settings and numbers, API sends, status waits."""

from __future__ import annotations

from pbxsms.sim.telnyx import TelnyxSimulator
from tests.support import carriers
from tests.support.carriers import API_TOKEN, BUS, settled, stored_on
from tests.support.delivery import ORG
from tests.support.gateway import Gateway

__all__ = ["API_TOKEN", "BUS", "ORG", "send", "settled", "stored_on"]

API_KEY = "KEY0123456789ABCDEF_telnyx-test"
OURS = "+13125550100"  # our Telnyx number, extension 201
CUSTOMER = "+17735550123"

NUMBERS = f"""
[[numbers]]
number = "{OURS}"
provider = "telnyx"
extension = "201"
domain = "pbx.example.com"
email = ["front@example.com"]
mobileapp_org = "{ORG}"
"""


def telnyx_env(sim: TelnyxSimulator, **more: str) -> dict[str, str]:
    return {"TELNYX_API_KEY": API_KEY, "TELNYX_PUBLIC_KEY": sim.public_key,
            "TELNYX_MESSAGING_PROFILE_ID": sim.profile_id, "TELNYX_BASE_URL": sim.base_url,
            "PBXSMS_API_TOKEN": API_TOKEN, **more}


def toml(enabled: str = '"telnyx"', more: str = "") -> str:
    return f"[plugins]\nenabled = [{enabled}]\n{BUS}\n{NUMBERS}\n{more}"


async def send(gateway: Gateway, body: str = "hello", to: str = CUSTOMER,
               sender: str = OURS) -> str:
    """Send through the API from our Telnyx number; the message id."""
    return await carriers.send(gateway, sender, to, body)
