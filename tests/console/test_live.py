"""Live pages: Server-Sent Events resume from Last-Event-ID, nothing lost or repeated."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import ClientResponse, ClientSession, CookieJar

from pbxsms.sim.clicksend import ClickSendSimulator
from tests.console.support import CUSTOMER, OURS_A, PASSWORD, add_user, inbound_url
from tests.console.test_browser import CONV_A, texted
from tests.support.gateway import Gateway


async def events(response: ClientResponse, count: int,
                 timeout: float = 5.0) -> list[tuple[int, dict[str, Any]]]:
    """The next `count` events (id, data) of an open stream."""
    found: list[tuple[int, dict[str, Any]]] = []
    event_id, data = None, None

    async def read() -> None:
        nonlocal event_id, data
        while len(found) < count:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            elif line == "" and event_id is not None and data is not None:
                found.append((event_id, data))
                event_id, data = None, None

    await asyncio.wait_for(read(), timeout)
    return found


async def test_a_reconnected_page_gets_what_it_missed_once(
        console_gateway: Gateway, sim: ClickSendSimulator) -> None:
    await add_user(console_gateway, "admin")
    await texted(console_gateway, sim, OURS_A, "one")
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
        async with http.post(f"{console_gateway.url}/console/login",
                             data={"name": "admin", "password": PASSWORD},
                             headers={"Origin": console_gateway.url}) as response:
            assert response.status == 200
        live = f"{console_gateway.url}/console/live?thread={CONV_A}&since=0"
        async with http.get(live) as stream:
            assert stream.headers["Content-Type"] == "text/event-stream"
            (first_id, first), = await events(stream, 1)
        assert "one" in first["html"]
        # Disconnected: two messages arrive meanwhile.
        await texted(console_gateway, sim, OURS_A, "two", count=2)
        await texted(console_gateway, sim, OURS_A, "three", count=3)
        async with http.get(live, headers={"Last-Event-ID": str(first_id)}) as stream:
            missed = await events(stream, 2)
            assert [e["n"] for _, e in missed] == [2, 3]
            assert "two" in missed[0][1]["html"] and "three" in missed[1][1]["html"]
            assert all(seq > first_id for seq, _ in missed)
            # ... and then the stream goes on live.
            pushed = await sim.push_inbound(inbound_url(console_gateway), CUSTOMER, OURS_A,
                                            "four")
            assert pushed.status == 200
            ((_, fourth),) = await events(stream, 1)
            assert fourth["n"] == 4


async def test_the_live_channel_needs_a_session(console_gateway: Gateway) -> None:
    async with ClientSession() as http, \
            http.get(f"{console_gateway.url}/console/live?since=0") as response:
        assert response.status == 401
