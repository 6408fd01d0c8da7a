"""What the Telnyx tests share: the gateway's settings and numbers, API sends, status waits."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientSession

from pbxsms.core.stores.status import StatusRecord
from pbxsms.sim.telnyx import TelnyxSimulator
from tests.conftest import Gateway
from tests.helpers import wait_until

API_KEY = "KEY0123456789ABCDEF_telnyx-test"
API_TOKEN = "api-t0ken"
OURS = "+13125550100"  # our Telnyx number, extension 201
CUSTOMER = "+17735550123"
ORG = "org1"

NUMBERS = f"""
[[numbers]]
number = "{OURS}"
provider = "telnyx"
extension = "201"
domain = "pbx.example.com"
email = ["front@example.com"]
mobileapp_org = "{ORG}"
"""
# Fast retries, so fault scenarios settle in about a second.
BUS = """
[bus]
backoff_initial = "50ms"
backoff_max = "500ms"
max_deliver = 4
"""


def telnyx_env(sim: TelnyxSimulator, **more: str) -> dict[str, str]:
    return {"TELNYX_API_KEY": API_KEY, "TELNYX_PUBLIC_KEY": sim.public_key,
            "TELNYX_MESSAGING_PROFILE_ID": sim.profile_id, "TELNYX_BASE_URL": sim.base_url,
            "PBXSMS_API_TOKEN": API_TOKEN, **more}


def toml(enabled: str = '"telnyx"', more: str = "") -> str:
    return f"[plugins]\nenabled = [{enabled}]\n{BUS}\n{NUMBERS}\n{more}"


async def send(gateway: Gateway, body: str = "hello", to: str = CUSTOMER,
               sender: str = OURS) -> str:
    """Send through the API; the message id."""
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with ClientSession(headers=headers) as http, http.post(
            f"{gateway.url}/api/v1/messages",
            json={"from": sender, "to": to, "body": body}) as response:
        answer: dict[str, Any] = await response.json()
        assert response.status == 202, answer
    return str(answer["id"])


async def settled(gateway: Gateway, message_id: str, state: str, timeout: float = 10.0
                  ) -> StatusRecord:
    """Wait until the message's record is in `state`; the record."""
    record: StatusRecord | None = None

    async def reached() -> bool:
        nonlocal record
        record = await gateway.runtime.status.get(message_id)
        return record is not None and record.state.value == state

    try:
        await wait_until(reached, timeout, f"{message_id} to be {state}")
    except AssertionError:
        raise AssertionError(f"{message_id} not {state}: {record}") from None
    assert record is not None
    return record


async def stored_on(gateway: Gateway, subject: str) -> int:
    """How many events the stream holds on `subject` (wildcards allowed)."""
    runtime = gateway.runtime
    info = await runtime.js.stream_info(runtime.stream, subjects_filter=subject)
    return sum((info.state.subjects or {}).values())
