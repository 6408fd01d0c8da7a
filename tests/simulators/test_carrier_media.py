"""The carrier simulators host an inbound MMS's media as each carrier does: Twilio's Media
URL wants the account's Basic auth and redirects to an open CDN link, Bandwidth's media API
wants the API user (or an OAuth token), Telnyx's links are open; `/_sim/inbound` takes
`media` as base64."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from urllib.parse import urljoin

import pytest
from aiohttp import ClientSession, web

from pbxsms.sim.bandwidth import BandwidthSimulator
from pbxsms.sim.telnyx import TelnyxSimulator
from pbxsms.sim.twilio import TwilioSimulator
from tests.helpers import free_port
from tests.support.media import png

SID, TOKEN = "AC" + "ab" * 16, "twilio-token"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class Hook:
    """A webhook receiver on loopback that keeps what it was posted."""

    def __init__(self) -> None:
        self.posts: list[bytes] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.posts.append(await request.read())
        return web.Response(text="ok")


@pytest.fixture
async def hook() -> AsyncIterator[tuple[Hook, str]]:
    received = Hook()
    app = web.Application()
    app.router.add_post("/hook", received.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield received, f"http://127.0.0.1:{port}/hook"
    await runner.cleanup()


async def test_twilio_media_want_basic_auth_then_redirect_to_the_cdn(
        hook: tuple[Hook, str]) -> None:
    _, url = hook
    picture = png(1)
    async with TwilioSimulator(TOKEN, SID) as sim, ClientSession() as http:
        async with http.post(f"{sim.base_url}/_sim/inbound", json={
                "url": url, "from": "+14155550199", "to": "+14155550100", "body": "look",
                "media": [{"content": base64.b64encode(picture).decode(),
                           "content_type": "image/png"}]}) as response:
            assert response.status == 200, await response.text()
        params = dict(sim.pushes[-1].params)
        assert params["NumMedia"] == "1" and params["MediaContentType0"] == "image/png"
        link = params["MediaUrl0"]
        assert f"/2010-04-01/Accounts/{SID}/Messages/MM" in link
        async with http.get(link, allow_redirects=False) as response:
            assert response.status == 401
            assert (await response.json())["code"] == 20003
        async with http.get(link, allow_redirects=False,
                            headers=basic(SID, TOKEN)) as response:
            assert response.status == 302
            cdn = response.headers["Location"]
        assert "/media.twiliocdn.com/" in cdn
        async with http.get(urljoin(link, cdn)) as response:
            assert response.status == 200 and await response.read() == picture


async def test_bandwidth_media_want_the_api_user(hook: tuple[Hook, str]) -> None:
    _, url = hook
    picture = png(2)
    async with BandwidthSimulator(media_username="u", media_password="p") as sim, \
            ClientSession() as http:
        async with http.post(f"{sim.base_url}/_sim/inbound", json={
                "url": url, "from": "+19195550123", "to": "+19195550100", "text": "look",
                "media": [{"content": base64.b64encode(picture).decode(),
                           "content_type": "image/png"}]}) as response:
            assert response.status == 200, await response.text()
        (link,) = list(sim.media)
        full = f"{sim.base_url}{link}"
        assert link.startswith(f"/api/v2/users/{sim.account_id}/media/") and \
            link.endswith("/0/bw.png")
        for headers, status in (({}, 401), (basic("u", "wrong"), 401), (basic("u", "p"), 200)):
            async with http.get(full, headers=headers) as response:
                assert response.status == status
                if status == 200:
                    assert await response.read() == picture


async def test_telnyx_media_are_open_and_described(hook: tuple[Hook, str]) -> None:
    received, url = hook
    picture = png(3)
    async with TelnyxSimulator(["key"]) as sim, ClientSession() as http:
        result = await sim.push_inbound(url, "+17735550123", "+13125550100", "look",
                                        media=[(picture, "image/png")])
        assert result.status == 200
        payload = result.payload["data"]["payload"]
        (item,) = payload["media"]
        assert payload["type"] == "MMS" and item["size"] == len(picture)
        assert item["content_type"] == "image/png"
        async with http.get(item["url"]) as response:
            assert response.status == 200 and await response.read() == picture
        assert received.posts
