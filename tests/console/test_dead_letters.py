"""A dead letter delivered again from the Problems page reaches the person once."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import ClientSession, CookieJar

from pbxsms.sim.clicksend import ClickSendSimulator
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.console.support import (
    CUSTOMER,
    OURS_A,
    PASSWORD,
    TOML,
    add_user,
    console_of,
    env,
    inbound_url,
)
from tests.helpers import wait_until
from tests.support.delivery import APP_TOKEN, HOOK_TOKEN, ORG
from tests.support.gateway import Gateway

APP_TOML = TOML.replace('enabled = ["clicksend", "console"]',
                        'enabled = ["clicksend", "mobileapp", "console"]').replace(
    'backoff_max = "500ms"', 'backoff_max = "500ms"\nmax_deliver = 2').replace(
    'description = "Front desk"', f'description = "Front desk"\nmobileapp_org = "{ORG}"')


async def test_a_dead_letter_is_delivered_again_once(
        start_gateway: Callable[..., Awaitable[Gateway]], sim: ClickSendSimulator,
        app: MobileAppSimulator) -> None:
    gateway = await start_gateway(toml=APP_TOML, env={
        **env(sim.base_url), "RINGOTEL_API_URL": app.api_url,
        "RINGOTEL_API_TOKEN": APP_TOKEN, "RINGOTEL_WEBHOOK_TOKEN": HOOK_TOKEN})
    app.add_user(ORG, "101")
    app.fail_always("500")
    await add_user(gateway, "admin")
    pushed = await sim.push_inbound(inbound_url(gateway), CUSTOMER, OURS_A, "call me back")
    assert pushed.status == 200
    index = console_of(gateway).index

    async def dead() -> bool:
        return any(d.consumer == "deliver-mobileapp" for d in await index.dead_letters())

    await wait_until(dead, message="the app delivery dead-lettered")
    letter = next(d for d in await index.dead_letters() if d.consumer == "deliver-mobileapp")
    assert "500" in letter.reason
    app.fail_always(None)
    headers = {"Origin": gateway.url}
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
        async with http.post(f"{gateway.url}/console/login", headers=headers,
                             data={"name": "admin", "password": PASSWORD}) as response:
            assert str(response.url).endswith("/console/")
        async with http.get(f"{gateway.url}/console/problems") as response:
            page = await response.text()
        assert "Dead letters" in page and letter.key in page
        csrf = re.findall(r'name="csrf" value="([^"]+)"', page)[0]
        for _ in range(2):  # a double click
            async with http.post(f"{gateway.url}/console/problems/redeliver",
                                 data={"csrf": csrf, "dead": letter.key},
                                 headers=headers) as response:
                assert "Delivered again" in await response.text()
        await wait_until(lambda: any(p.content == "call me back" for p in app.pushes),
                         message="the text in the app after the re-delivery")
        async with http.get(f"{gateway.url}/console/problems") as response:
            assert "delivered again" in await response.text()

    async def settled() -> bool:
        info = await gateway.runtime.js.consumer_info(gateway.runtime.stream,
                                                      "deliver-mobileapp")
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    await wait_until(settled, message="the app consumer idle")
    assert sum(p.content == "call me back" for p in app.pushes) == 1
