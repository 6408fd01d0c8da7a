"""The Ringotel-style mobile-app simulator over real loopback HTTP."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from pbxsms.sim.mobileapp import MobileAppSimulator, serve_forever

TOKEN = "ringotel-admin-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
PARAMS: dict[str, Any] = {
    "orgid": "org1",
    "from": "+15551234567",
    "to": "201",
    "content": "hi",
    "type": 1,
}
MESSAGE: dict[str, Any] = {"method": "message", "params": PARAMS}


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.01)


@pytest.fixture
async def app() -> AsyncIterator[MobileAppSimulator]:
    async with MobileAppSimulator(TOKEN) as simulator:
        yield simulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    url: str,
    body: Any = MESSAGE,
    headers: dict[str, str] = BEARER,
) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = headers | {"Content-Type": "application/json"}
    async with http.post(url, data=data, headers=headers) as resp:
        return resp.status, await resp.json()


class Gateway:
    """A stand-in for the gateway's app webhook, recording what the app posts."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str], Any]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.calls.append((request.path, dict(request.query), await request.json()))
        return web.json_response({"ok": True})

    async def __aenter__(self) -> Gateway:
        application = web.Application()
        application.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(application)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def test_push_is_accepted_and_recorded(
    app: MobileAppSimulator, http: aiohttp.ClientSession
) -> None:
    status, body = await call(http, app.api_url)
    assert status == 200
    assert list(body) == ["result"]
    messageid = body["result"]["messageid"]
    assert isinstance(messageid, str) and messageid

    (push,) = app.pushes
    assert (push.orgid, push.from_, push.to, push.content, push.type) == (
        "org1",
        "+15551234567",
        "201",
        "hi",
        1,
    )
    assert push.messageid == messageid
    assert app.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"

    media = {"method": "message", "params": PARAMS | {"content": "https://x/a.jpg", "type": 7}}
    assert (await call(http, app.api_url + "api/", media))[0] == 200
    async with http.get(f"{app.base_url}/_sim/pushes") as resp:
        pushes = (await resp.json())["pushes"]
    assert [(p["from"], p["to"], p["type"]) for p in pushes] == [
        ("+15551234567", "201", 1),
        ("+15551234567", "201", 7),
    ]
    assert set(pushes[0]) >= {"messageid", "orgid", "from", "to", "content", "type"}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["missing", "wrong-token", "basic"],
)
async def test_bad_token_is_401_json(
    app: MobileAppSimulator, http: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    status, body = await call(http, app.api_url, headers=headers)
    assert status == 401
    assert body["error"]["code"] == 401 and isinstance(body["error"]["message"], str)
    assert app.pushes == []
    assert app.requests[0].status == 401


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{nope", -32700),
        ([1, 2], -32600),
        ({"params": PARAMS}, -32600),
        ({"method": "typing", "params": PARAMS}, -32601),
        ({"method": "message"}, -32602),
        ({"method": "message", "params": PARAMS | {"to": ""}}, -32602),
        ({"method": "message", "params": {"orgid": "o", "from": "a", "to": "201"}}, -32602),
        ({"method": "message", "params": PARAMS | {"type": "text"}}, -32602),
    ],
    ids=[
        "malformed",
        "not-object",
        "no-method",
        "unknown-method",
        "no-params",
        "empty-to",
        "no-content",
        "bad-type",
    ],
)
async def test_bad_calls_answer_an_error_body_with_http_200(
    app: MobileAppSimulator, http: aiohttp.ClientSession, body: Any, code: int
) -> None:
    status, answer = await call(http, app.api_url, body)
    assert status == 200
    assert list(answer) == ["error"]
    assert answer["error"]["code"] == code and answer["error"]["message"]
    assert app.pushes == []


async def test_known_users_only_once_some_are_registered(
    app: MobileAppSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{app.base_url}/_sim/users", json={"orgid": "org1", "extension": "201"}
    ) as resp:
        assert resp.status == 200
    assert "result" in (await call(http, app.api_url))[1]
    other_org = {"method": "message", "params": PARAMS | {"orgid": "org2"}}
    assert "Organization" in (await call(http, app.api_url, other_org))[1]["error"]["message"]
    other_ext = {"method": "message", "params": PARAMS | {"to": "999"}}
    assert "User" in (await call(http, app.api_url, other_ext))[1]["error"]["message"]
    assert len(app.pushes) == 1


async def test_configured_api_path(http: aiohttp.ClientSession) -> None:
    async with MobileAppSimulator(TOKEN, api_path="/api") as app:
        assert app.api_url.endswith("/api")
        for suffix in ("/api", "/api/"):
            assert (await call(http, app.base_url + suffix))[0] == 200
        status, _ = await call(http, f"{app.base_url}/")
        assert status == 404
        async with http.get(app.api_url, headers=BEARER) as resp:
            assert resp.status == 404
        assert len(app.pushes) == 2


async def test_next_answers_fail_then_recover(
    app: MobileAppSimulator, http: aiohttp.ClientSession
) -> None:
    app.fail_next("500")
    app.fail_next("error", message="Org ID not found")
    assert (await call(http, app.api_url))[0] == 500
    status, body = await call(http, app.api_url)
    assert (status, body["error"]["message"]) == (200, "Org ID not found")
    assert (await call(http, app.api_url))[0] == 200
    assert [r.fault for r in app.requests] == ["500", "error", None]
    assert len(app.pushes) == 1


async def test_drop_and_delay(app: MobileAppSimulator, http: aiohttp.ClientSession) -> None:
    app.fail_next("drop")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(http, app.api_url)
    assert app.pushes == [] and app.requests[0].status is None

    app.fail_next("delay", delay=0.5)
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(
            app.api_url, json=MESSAGE, headers=BEARER, timeout=aiohttp.ClientTimeout(total=0.1)
        ):
            pass
    # The app still got the message; the gateway just never heard back.
    await wait_for(lambda: len(app.pushes) == 1)


async def test_always_fail_until_cleared_over_http(
    app: MobileAppSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{app.base_url}/_sim/fail_always", json={"kind": "500"}) as resp:
        assert resp.status == 200
    for _ in range(3):
        assert (await call(http, app.api_url))[0] == 500
    async with http.post(f"{app.base_url}/_sim/fail_always", json={"kind": None}) as resp:
        assert resp.status == 200
    async with http.post(f"{app.base_url}/_sim/fail", json={"kind": "error", "count": 2}) as resp:
        assert (await resp.json())["queued"] == 2
    async with http.post(f"{app.base_url}/_sim/fail", json={"kind": "bogus"}) as resp:
        assert resp.status == 400
    assert [(await call(http, app.api_url))[1].keys() for _ in range(3)] == [
        {"error"},
        {"error"},
        {"result"},
    ]
    async with http.get(f"{app.base_url}/_sim/requests") as resp:
        assert len((await resp.json())["requests"]) == 6
    async with http.post(f"{app.base_url}/_sim/reset") as resp:
        assert resp.status == 200
    assert (app.pushes, app.requests, app.faults, app.always) == ([], [], [], None)


async def test_reply_and_delivered_reach_the_gateway(
    app: MobileAppSimulator, http: aiohttp.ClientSession
) -> None:
    async with Gateway() as gw:
        result = await app.reply(
            gw.url + "/webhook/mobileapp", "hook-token", "201", "+15551234567", "yes", "org1"
        )
        assert (result.status, json.loads(result.body)) == (200, {"ok": True})
        await app.delivered(gw.url + "/webhook/mobileapp?x=1", "hook-token", "m-1", orgid="org1")
        body = {
            "url": gw.url + "/hook",
            "token": "t2",
            "from": "202",
            "to": "+15550000001",
            "content": "https://x/pic.jpg",
            "orgid": "org1",
            "messageid": "fixed-id",
            "type": 2,
        }
        async with http.post(f"{app.base_url}/_sim/reply", json=body) as resp:
            relayed = await resp.json()
        assert relayed["status"] == 200 and relayed["url"] == gw.url + "/hook?token=t2"

    (path, query, reply), (_, dquery, delivered), (_, _, media) = gw.calls
    assert (path, query) == ("/webhook/mobileapp", {"token": "hook-token"})
    assert reply["method"] == "message"
    assert reply["params"] | {"messageid": ""} == {
        "from": "201",
        "to": "+15551234567",
        "content": "yes",
        "orgid": "org1",
        "messageid": "",
    }
    assert reply["params"]["messageid"]
    assert dquery == {"x": "1", "token": "hook-token"}
    assert delivered == {"method": "delivered", "params": {"messageid": "m-1", "orgid": "org1"}}
    assert media["params"]["type"] == 2 and media["params"]["messageid"] == "fixed-id"


async def test_serve_forever_prints_no_secret(
    capsys: pytest.CaptureFixture[str], http: aiohttp.ClientSession
) -> None:
    task = asyncio.create_task(serve_forever("127.0.0.1", 0, TOKEN))
    out = ""

    def started() -> bool:
        nonlocal out
        out += capsys.readouterr().out
        return "http://" in out

    try:
        await wait_for(started)
        base = re.search(r"http://[0-9.]+:[0-9]+", out)
        assert base is not None and TOKEN not in out
        assert (await call(http, base.group(0) + "/"))[0] == 200
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
