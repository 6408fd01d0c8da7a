"""The console over HTTP (no browser): sessions, forms, escaping, tenants, the read model."""

from __future__ import annotations

import re

from aiohttp import ClientSession, CookieJar

from pbxsms.sim.clicksend import ClickSendSimulator
from tests.console.support import (
    CUSTOMER,
    OURS_A,
    OURS_B,
    PASSWORD,
    add_user,
    console_of,
    inbound_url,
)
from tests.helpers import wait_until
from tests.support.gateway import Gateway


async def sign_in(http: ClientSession, gateway: Gateway, name: str) -> None:
    async with http.post(f"{gateway.url}/console/login",
                         data={"name": name, "password": PASSWORD, "next": "/console/"},
                         headers={"Origin": gateway.url}) as response:
        assert response.status == 200, await response.text()
        assert str(response.url).endswith("/console/")


async def test_a_page_without_session_goes_to_login(console_gateway: Gateway) -> None:
    async with ClientSession() as http, \
            http.get(f"{console_gateway.url}/console/numbers", allow_redirects=False) as r:
        assert r.status == 303
        assert r.headers["Location"] == "/console/login?next=/console/numbers"


async def test_inbound_appears_in_the_list_and_thread(console_gateway: Gateway,
                                                      sim: ClickSendSimulator) -> None:
    await add_user(console_gateway, "admin")
    pushed = await sim.push_inbound(inbound_url(console_gateway), CUSTOMER, OURS_A,
                                    "<script>alert(1)</script>")
    assert pushed.status == 200
    index = console_of(console_gateway).index
    conv = f"{OURS_A[1:]}.{CUSTOMER[1:]}"

    async def indexed() -> bool:
        thread = await index.thread(conv)
        return thread is not None and thread.count == 1

    await wait_until(indexed, message="the inbound message in the console's index")
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
        await sign_in(http, console_gateway, "admin")
        async with http.get(f"{console_gateway.url}/console/") as response:
            page = await response.text()
            assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert f'id="thread-{conv}"' in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<script>alert(1)</script>" not in page
        async with http.get(f"{console_gateway.url}/console/t/{conv}") as response:
            page = await response.text()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert re.search(r'data-live="/console/live\?thread=', page)


async def test_tenant_user_cannot_open_another_tenants_thread(console_gateway: Gateway,
                                                              sim: ClickSendSimulator) -> None:
    await add_user(console_gateway, "alice", domain="a.example.com")
    await sim.push_inbound(inbound_url(console_gateway), CUSTOMER, OURS_B, "for tenant b")
    index = console_of(console_gateway).index
    conv = f"{OURS_B[1:]}.{CUSTOMER[1:]}"

    async def indexed() -> bool:
        return await index.thread(conv) is not None

    await wait_until(indexed, message="tenant b's conversation indexed")
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
        await sign_in(http, console_gateway, "alice")
        async with http.get(f"{console_gateway.url}/console/t/{conv}") as response:
            assert response.status == 404
            assert "for tenant b" not in await response.text()
        async with http.get(f"{console_gateway.url}/console/") as response:
            assert conv not in await response.text()
