"""The console under test: a gateway with the console and ClickSend on the simulator,
two tenants' numbers, and users in the bus."""

from __future__ import annotations

from pbxsms.plugins.console.users import Users, new_user
from pbxsms.plugins.console.web import Console
from tests.support.gateway import Gateway

USER, KEY = "pbxsms-test", "4F1E2D3C-5B6A-4789-9ABC-DEF012345678"
SECRET = "console-secret-for-tests-0123456789"
WEBHOOK_TOKEN = "hook-t0ken"
OURS_A = "+61481070001"  # tenant a.example.com, extension 101
OURS_B = "+61481070002"  # tenant b.example.com, extension 201
CUSTOMER = "+61400000001"
PASSWORD = "correct horse battery"

TOML = f"""
[plugins]
enabled = ["clicksend", "console"]

[bus]
backoff_initial = "50ms"
backoff_max = "500ms"

[[numbers]]
number = "{OURS_A}"
provider = "clicksend"
extension = "101"
domain = "a.example.com"
description = "Front desk"

[[numbers]]
number = "{OURS_B}"
provider = "clicksend"
extension = "201"
domain = "b.example.com"
"""


def env(sim_url: str) -> dict[str, str]:
    return {"CLICKSEND_USERNAME": USER, "CLICKSEND_API_KEY": KEY,
            "CLICKSEND_BASE_URL": sim_url, "CLICKSEND_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
            "PBXSMS_CONSOLE_SECRET": SECRET, "PBXSMS_API_TOKEN": "api-t0ken"}


def console_of(gateway: Gateway) -> Console:
    from pbxsms.plugins.console.plugin import _console
    return _console(gateway.runtime)


async def add_user(gateway: Gateway, name: str, domain: str | None = None,
                   password: str = PASSWORD) -> None:
    users: Users = console_of(gateway).users
    await users.put(new_user(name, password, domain))


def inbound_url(gateway: Gateway) -> str:
    return f"{gateway.url}/webhook/clicksend/sms?token={WEBHOOK_TOKEN}"
