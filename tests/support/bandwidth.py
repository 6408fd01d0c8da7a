"""What the Bandwidth tests share: the gateway's settings and numbers."""

from __future__ import annotations

from pbxsms.sim.bandwidth import BandwidthSimulator
from tests.support.carriers import API_TOKEN, BUS
from tests.support.delivery import ORG

__all__ = ["BUS", "ORG"]

OURS = "+19195550100"  # our Bandwidth number, extension 201
CUSTOMER = "+19195550123"
CALLBACK_USER, CALLBACK_PASSWORD = "bw-callbacks", "c4llback-pa55word"

NUMBERS = f"""
[[numbers]]
number = "{OURS}"
provider = "bandwidth"
extension = "201"
domain = "pbx.example.com"
email = ["front@example.com"]
mobileapp_org = "{ORG}"
"""


def simulator() -> BandwidthSimulator:
    return BandwidthSimulator(client_id="bw-client", client_secret="bw-s3cret",
                              callback_username=CALLBACK_USER,
                              callback_password=CALLBACK_PASSWORD)


def bandwidth_env(sim: BandwidthSimulator, **more: str) -> dict[str, str]:
    return {"BANDWIDTH_ACCOUNT_ID": sim.account_id,
            "BANDWIDTH_APPLICATION_ID": sim.application_id,
            "BANDWIDTH_CLIENT_ID": sim.client_id, "BANDWIDTH_CLIENT_SECRET": sim.client_secret,
            "BANDWIDTH_CALLBACK_USERNAME": CALLBACK_USER,
            "BANDWIDTH_CALLBACK_PASSWORD": CALLBACK_PASSWORD,
            "BANDWIDTH_BASE_URL": sim.api_url, "BANDWIDTH_TOKEN_URL": sim.token_url,
            "PBXSMS_API_TOKEN": API_TOKEN, **more}


def toml(enabled: str = '"bandwidth"', more: str = "") -> str:
    return f"[plugins]\nenabled = [{enabled}]\n{BUS}\n{NUMBERS}\n{more}"
