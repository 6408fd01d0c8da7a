"""Tenancy in the API: a tenant's token sees and sends only for its domain's numbers; the
operator's token for all."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientSession

from pbxsms.sim.clicksend import ClickSendSimulator
from tests.helpers import wait_until
from tests.outbound.sending import KEY, TOKEN, USER, recipient
from tests.support.gateway import StartGateway

A, B = "+61481070011", "+61481070022"
TENANTS = '\'{"a.example.com": "tok-a", "B.example.com": "tok-b"}\''
NUMBERS = f"""
[plugins]
enabled = ["clicksend"]

[[numbers]]
number = "{A}"
provider = "clicksend"
extension = "101"
domain = "a.example.com"

[[numbers]]
number = "{B}"
provider = "clicksend"
extension = "101"
domain = "b.example.com"
"""


async def call(token: str, method: str, url: str, **kw: Any) -> tuple[int, Any]:
    async with ClientSession(headers={"Authorization": f"Bearer {token}"}) as http, \
            http.request(method, url, **kw) as response:
        return response.status, (await response.json() if response.status != 204 else None)


async def test_a_tenant_sees_and_sends_only_for_its_numbers(
        start_gateway: StartGateway, sim: ClickSendSimulator) -> None:
    gateway = await start_gateway(toml=NUMBERS, env={
        "CLICKSEND_USERNAME": USER, "CLICKSEND_API_KEY": KEY,
        "CLICKSEND_BASE_URL": sim.base_url, "PBXSMS_API_TOKEN": TOKEN,
        "PBXSMS_TENANT_TOKENS": TENANTS})
    api = f"{gateway.url}/api/v1"

    # Sending: from its own number, or for its extension (within its tenant); never from
    # another tenant's number.
    status, sent = await call("tok-a", "POST", f"{api}/messages",
                              json={"from": A, "to": recipient(1), "body": "from A"})
    assert status == 202, sent
    status, by_extension = await call("tok-b", "POST", f"{api}/messages",
                                      json={"extension": "101", "to": recipient(2),
                                            "body": "from B's 101"})
    assert status == 202, by_extension
    status, refused = await call("tok-a", "POST", f"{api}/messages",
                                 json={"from": B, "to": recipient(3), "body": "not mine"})
    assert (status, refused["field"]) == (403, "from")
    await wait_until(lambda: len(sim.sent_messages) == 2, message="two sends")
    assert sorted(str(m["from"]) for m in sim.sent_messages) == [A, B]

    # Seeing: its own messages and numbers only; the operator sees all.
    async def state(token: str, message_id: str) -> int:
        return (await call(token, "GET", f"{api}/messages/{message_id}"))[0]

    await wait_until(lambda: _accepted(gateway, sent["id"]), message="the record")
    assert await state("tok-a", sent["id"]) == 200
    assert await state("tok-b", sent["id"]) == 404
    assert await state(TOKEN, sent["id"]) == 200
    for token, shown in (("tok-a", True), ("tok-b", False), (TOKEN, True)):
        status, listed = await call(token, "GET", f"{api}/messages?status=accepted")
        assert (sent["id"] in [m["id"] for m in listed["messages"]]) == shown, token
    status, numbers = await call("tok-a", "GET", f"{api}/numbers")
    assert [n["number"] for n in numbers["numbers"]] == [A]
    status, numbers = await call(TOKEN, "GET", f"{api}/numbers")
    assert sorted(n["number"] for n in numbers["numbers"]) == [A, B]
    assert (await call("tok-a", "GET", f"{api}/numbers/{B}"))[0] == 404

    # Writing numbers: a tenant's records are of its domain.
    status, made = await call("tok-a", "PUT", f"{api}/numbers/+61481070033",
                              json={"provider": "clicksend", "extension": "102"})
    assert (status, made["domain"]) == (201, "a.example.com")
    status, refused = await call("tok-a", "PUT", f"{api}/numbers/+61481070044",
                                 json={"provider": "clicksend", "domain": "b.example.com"})
    assert (status, refused["field"]) == (403, "domain")
    assert (await call("tok-b", "DELETE", f"{api}/numbers/+61481070033"))[0] == 404
    assert (await call("tok-x", "GET", f"{api}/numbers"))[0] == 401


async def _accepted(gateway: Any, message_id: str) -> bool:
    record = await gateway.runtime.status.get(message_id)
    return record is not None and record.state.value == "accepted"
