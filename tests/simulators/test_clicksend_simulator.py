"""The ClickSend simulator over real loopback HTTP: auth, send, paging, faults, webhooks."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web

from pbxsms.sim.clicksend import (
    TEST_ACCOUNT_KEY,
    TEST_NUMBERS,
    ClickSendSimulator,
    message_parts,
    serve_forever,
)

USER, KEY = "apiuser", "6B1E0F8A-1C2D-4E5F-8A9B-0C1D2E3F4A5B"
UUID_UPPER = re.compile(r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}")

UNAUTHORIZED = {
    "http_code": 401,
    "response_code": "UNAUTHORIZED",
    "response_msg": "Authorization failed.",
    "data": None,
}
NOT_FOUND = {
    "http_code": 404,
    "response_code": "NOT_FOUND",
    "response_msg": "Invalid endpoint. Please try again.",
    "data": None,
}
TOO_MANY = {
    "http_code": 429,
    "response_code": "HTTP_TOO_MANY_REQUESTS",
    "response_msg": "Too many attempts.",
    "data": None,
}
# Key order of the real captured send response (reference §2).
SUCCESS_KEYS = [
    "direction", "date", "to", "body", "from", "schedule", "message_id", "message_parts",
    "message_price", "from_email", "list_id", "custom_string", "contact_id", "user_id",
    "subaccount_id", "is_shared_system_number", "country", "carrier", "status",
]  # fmt: skip
REJECTED_KEYS = [
    "to", "body", "from", "schedule", "message_id", "custom_string", "is_shared_system_number",
    "status",
]  # fmt: skip
PAGINATOR_KEYS = [
    "total", "per_page", "current_page", "last_page", "next_page_url", "prev_page_url", "from",
    "to", "data",
]  # fmt: skip


def basic(user: str = USER, key: str = KEY) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()}


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.01)


@pytest.fixture
async def sim() -> AsyncIterator[ClickSendSimulator]:
    simulator = ClickSendSimulator([(USER, KEY)])
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def send(
    http: aiohttp.ClientSession, sim: ClickSendSimulator, *messages: dict[str, Any]
) -> tuple[int, Any]:
    async with http.post(
        f"{sim.base_url}/v3/sms/send", json={"messages": list(messages)}, headers=basic()
    ) as resp:
        return resp.status, await resp.json()


class Receiver:
    """A tiny gateway stand-in that records what the simulator pushes to it."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.calls.append(
            {
                "method": request.method,
                "path": request.path,
                "query": list(request.query.items()),
                "content_type": request.content_type,
                "raw": await request.text(),
            }
        )
        return web.Response(status=202, text="accepted")

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


# ---- authentication and routing ------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic(key="WRONG"),
        basic(user="nobody"),
        basic(user="notactive", key=TEST_ACCOUNT_KEY),
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Bearer " + KEY},
    ],
    ids=["missing", "wrong-key", "unknown-user", "not-activated", "garbage", "bearer"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v3/sms/send"), ("GET", "/v3/account"), ("GET", "/v3/sms/history")],
)
async def test_bad_credentials_get_the_exact_401(
    sim: ClickSendSimulator,
    http: aiohttp.ClientSession,
    headers: dict[str, str],
    method: str,
    path: str,
) -> None:
    body = {"messages": [{"to": "+61411111111", "body": "x"}]}
    async with http.request(method, sim.base_url + path, json=body, headers=headers) as resp:
        assert resp.status == 401
        assert await resp.json() == UNAUTHORIZED
        assert "WWW-Authenticate" not in resp.headers
    assert sim.sent_messages == []


async def test_banned_test_account_is_forbidden(
    sim: ClickSendSimulator, http: aiohttp.ClientSession
) -> None:
    headers = basic("banned", TEST_ACCOUNT_KEY)
    async with http.get(f"{sim.base_url}/v3/account", headers=headers) as resp:
        assert resp.status == 403
        assert (await resp.json())["response_code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v3/sms/send"), ("PUT", "/v3/account"), ("POST", "/v3/nope"), ("GET", "/")],
)
@pytest.mark.parametrize("authed", [True, False])
async def test_unknown_path_or_wrong_method_is_404(
    sim: ClickSendSimulator, http: aiohttp.ClientSession, method: str, path: str, authed: bool
) -> None:
    headers = basic() if authed else {}
    async with http.request(method, sim.base_url + path, headers=headers) as resp:
        assert resp.status == 404
        assert await resp.json() == NOT_FOUND


# ---- POST /v3/sms/send ---------------------------------------------------------------------


async def test_send_follows_the_real_response_and_is_recorded(
    sim: ClickSendSimulator, http: aiohttp.ClientSession
) -> None:
    msg = {
        "source": "pbx-gateway",
        "from": "+61411111111",
        "to": "+15551234567",
        "body": "Hello from extension 201",
        "custom_string": "3f1c2a9e-7d2b-4a51-9d8e-1b2c3d4e5f60",
    }
    async with http.post(
        f"{sim.base_url}/v3/sms/send", json={"messages": [msg]}, headers=basic()
    ) as resp:
        assert resp.status == 200
        payload = await resp.json()
        assert resp.headers["x-ratelimit-limit"] == "6000"
        assert resp.headers["x-ratelimit-remaining"] == "5999"
        assert 0 < int(resp.headers["ratelimit-reset"]) <= 60

    assert {k: payload[k] for k in ("http_code", "response_code", "response_msg")} == {
        "http_code": 200,
        "response_code": "SUCCESS",
        "response_msg": "Messages queued for delivery.",
    }
    data = payload["data"]
    assert list(data) == [
        "total_price", "total_count", "queued_count", "messages", "_currency", "blocked_count",
    ]  # fmt: skip
    assert (data["total_count"], data["queued_count"], data["blocked_count"]) == (1, 1, 0)
    assert data["_currency"]["currency_name_short"] == "USD"
    record = data["messages"][0]
    assert list(record) == SUCCESS_KEYS
    assert UUID_UPPER.fullmatch(record["message_id"])
    account = sim.accounts[USER]
    assert record | {"message_id": "", "date": 0, "schedule": 0} == {
        "direction": "out",
        "date": 0,
        "to": "+15551234567",
        "body": "Hello from extension 201",
        "from": "+61411111111",
        "schedule": 0,
        "message_id": "",
        "message_parts": 1,
        "message_price": "0.0792",
        "from_email": None,
        "list_id": None,
        "custom_string": msg["custom_string"],
        "contact_id": None,
        "user_id": account.user_id,
        "subaccount_id": account.subaccount_id,
        "is_shared_system_number": False,
        "country": "US",
        "carrier": "",
        "status": "SUCCESS",
    }
    assert isinstance(record["date"], int) and record["schedule"] == record["date"]
    assert data["total_price"] == pytest.approx(0.0792)

    assert sim.sent_messages == [record]
    (req,) = sim.send_requests
    assert req.authorization == basic()["Authorization"]
    assert req.body == {"messages": [msg]}
    assert req.custom_strings == [msg["custom_string"]]
    assert req.status == 200 and req.messages == [record]


async def test_test_numbers_are_accepted_free_and_keep_the_carrier(
    sim: ClickSendSimulator, http: aiohttp.ClientSession
) -> None:
    status, payload = await send(
        http, sim, *({"to": n, "body": "test message, please ignore"} for n in sorted(TEST_NUMBERS))
    )
    assert status == 200
    records = payload["data"]["messages"]
    assert {r["status"] for r in records} == {"SUCCESS"}
    assert {(r["message_parts"], r["message_price"]) for r in records} == {(0, "0.0000")}
    assert payload["data"]["total_price"] == 0
    optus = next(r for r in records if r["to"] == "+61411111111")
    assert (optus["country"], optus["carrier"]) == ("AU", "Optus")
    assert optus["is_shared_system_number"] is True  # no `from` and no dedicated number


async def test_bad_messages_get_per_message_statuses_inside_a_200(
    sim: ClickSendSimulator, http: aiohttp.ClientSession
) -> None:
    sim.force_status("+15550000001", "INSUFFICIENT_CREDIT")
    sim.force_status("+1 555 000 0002", "COUNTRY_NOT_ENABLED")  # stored in E.164
    status, payload = await send(
        http,
        sim,
        {"to": "not a number", "body": "x", "custom_string": "cs-1"},
        {"to": "+61411111111", "body": "   "},
        {"to": "+61411111111"},
        {"to": "+61411111111", "body": "x", "from": "Way Too Long Sender"},
        {"to": "+61411111111", "body": "x", "schedule": "tomorrow"},
        {"to": "+15550000001", "body": "x"},
        {"to": "+15550000002", "body": "x"},
        {"list_id": "428", "body": "x"},
        {"to": "0411 111 111", "country": "AU", "body": "local format", "from": "PBXsms"},
    )
    assert status == 200
    data = payload["data"]
    statuses = [m["status"] for m in data["messages"]]
    assert statuses == [
        "INVALID_RECIPIENT",
        "EMPTY_MESSAGE",
        "MISSING_REQUIRED_FIELDS",
        "INVALID_SENDER_ID",
        "INVALID_SCHEDULE",
        "INSUFFICIENT_CREDIT",
        "COUNTRY_NOT_ENABLED",
        "NOT_ENOUGH_PERMISSION_TO_LIST_ID",
        "SUCCESS",
    ]
    rejected = data["messages"][0]
    assert list(rejected) == REJECTED_KEYS
    assert rejected["schedule"] == "" and rejected["custom_string"] == "cs-1"
    assert UUID_UPPER.fullmatch(rejected["message_id"])
    assert (data["total_count"], data["queued_count"], data["blocked_count"]) == (9, 1, 1)
    assert data["messages"][-1]["to"] == "+61411111111"
    assert [m["to"] for m in sim.sent_messages] == ["+61411111111"]

    sim.force_status("+15550000001", None)
    _, payload = await send(http, sim, {"to": "+15550000001", "body": "x"})
    assert payload["data"]["messages"][0]["status"] == "SUCCESS"


async def test_nocredit_account_and_disabled_countries(
    sim: ClickSendSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{sim.base_url}/v3/sms/send",
        json={"messages": [{"to": "+61411111111", "body": "x"}]},
        headers=basic("nocredit", TEST_ACCOUNT_KEY),
    ) as resp:
        payload = await resp.json()
    assert resp.status == 200 and payload["response_code"] == "SUCCESS"
    assert payload["data"]["queued_count"] == 0
    assert payload["data"]["messages"][0]["status"] == "INSUFFICIENT_CREDIT"

    sim.settings.enabled_countries = {"US"}  # test numbers are not exempt, as a live probe saw
    _, payload = await send(
        http, sim, {"to": "+61411111111", "body": "x"}, {"to": "+14055555555", "body": "x"}
    )
    assert [m["status"] for m in payload["data"]["messages"]] == ["COUNTRY_NOT_ENABLED", "SUCCESS"]
    assert payload["data"]["blocked_count"] == 1


async def test_throttling_same_body_to_same_recipient_is_opt_in(
    sim: ClickSendSimulator, http: aiohttp.ClientSession
) -> None:
    twice = [{"to": "+15551234567", "body": "same"}] * 2
    _, payload = await send(http, sim, *twice)
    assert [m["status"] for m in payload["data"]["messages"]] == ["SUCCESS", "SUCCESS"]

    async with http.post(f"{sim.base_url}/_sim/config", json={"throttle_seconds": 60}) as resp:
        assert resp.status == 200
    _, payload = await send(http, sim, *twice, {"to": "+15551234567", "body": "different"})
    assert [m["status"] for m in payload["data"]["messages"]] == [
        "SUCCESS",
        "THROTTLED",
        "SUCCESS",
    ]


async def test_at_most_1000_messages_per_request(
    sim: ClickSendSimulator, http: aiohttp.ClientSession
) -> None:
    batch = [{"to": "+61411111111", "body": f"m{i}"} for i in range(1000)]
    status, payload = await send(http, sim, *batch)
    assert status == 200 and payload["data"]["queued_count"] == 1000
    sim.reset()

    status, payload = await send(http, sim, *batch, {"to": "+61411111111", "body": "one more"})
    assert status == 400
    assert payload["http_code"] == 400 and payload["response_code"] == "BAD_REQUEST"
    assert isinstance(payload["response_msg"], str) and "messages" in payload["data"]
    assert sim.sent_messages == []
    assert sim.send_requests[0].status == 400


@pytest.mark.parametrize(
    "raw", [b"{not json", b"", b'{"messages": []}', b'{"messages": "x"}', b"[1, 2]"]
)
async def test_malformed_send_body_is_400(
    sim: ClickSendSimulator, http: aiohttp.ClientSession, raw: bytes
) -> None:
    headers = basic() | {"Content-Type": "application/json"}
    async with http.post(f"{sim.base_url}/v3/sms/send", data=raw, headers=headers) as resp:
        assert resp.status == 400
        payload = await resp.json()
    assert (payload["http_code"], payload["response_code"]) == (400, "BAD_REQUEST")
    assert sim.sent_messages == []


# ---- fault injection -----------------------------------------------------------------------


async def test_429_with_retry_after_then_normal(
    sim: ClickSendSimulator, http: aiohttp.ClientSession
) -> None:
    sim.fail_next("429", retry_after=7)
    msg = {"to": "+61411111111", "body": "x"}
    async with http.post(
        f"{sim.base_url}/v3/sms/send", json={"messages": [msg]}, headers=basic()
    ) as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "7"
        assert await resp.json() == TOO_MANY
    assert sim.sent_messages == []
    status, _ = await send(http, sim, msg)
    assert status == 200
    assert [r.status for r in sim.send_requests] == [429, 200]
    assert [r.fault for r in sim.send_requests] == ["429", None]


async def test_500_and_store_then_500(sim: ClickSendSimulator, http: aiohttp.ClientSession) -> None:
    msg = {"to": "+61411111111", "body": "x", "custom_string": "ambiguous"}
    sim.fail_next("500")
    sim.fail_next("store_then_500")
    for _ in range(2):
        status, payload = await send(http, sim, msg)
        assert status == 500
        assert payload == {
            "http_code": 500,
            "response_code": "INTERNAL_SERVER_ERROR",
            "response_msg": "Something is broken.",
            "data": None,
        }
    # Only the second one was stored: the client cannot tell them apart.
    assert [m["custom_string"] for m in sim.sent_messages] == ["ambiguous"]
    assert [len(r.messages) for r in sim.send_requests] == [0, 1]


async def test_drop_connection_stores_nothing(
    sim: ClickSendSimulator, http: aiohttp.ClientSession
) -> None:
    sim.fail_next("drop", count=2)
    for _ in range(2):
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await send(http, sim, {"to": "+61411111111", "body": "x"})
    assert sim.sent_messages == []
    assert [(r.status, r.fault, r.body) for r in sim.send_requests] == [(None, "drop", None)] * 2
    status, _ = await send(http, sim, {"to": "+61411111111", "body": "x"})
    assert status == 200


async def test_delay_times_the_client_out_but_still_sends(
    sim: ClickSendSimulator, http: aiohttp.ClientSession
) -> None:
    sim.fail_next("delay", delay=0.5)
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(
            f"{sim.base_url}/v3/sms/send",
            json={"messages": [{"to": "+61411111111", "body": "late"}]},
            headers=basic(),
            timeout=aiohttp.ClientTimeout(total=0.1),
        ):
            pass
    assert sim.sent_messages == []
    await wait_for(lambda: len(sim.sent_messages) == 1)


async def test_faults_target_an_endpoint_and_can_be_set_over_http(
    sim: ClickSendSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{sim.base_url}/_sim/fail", json={"kind": "429", "retry_after": 3, "count": 2}
    ) as resp:
        assert resp.status == 200
    async with http.post(f"{sim.base_url}/_sim/fail", json={"kind": "explode"}) as resp:
        assert resp.status == 400
    async with http.get(f"{sim.base_url}/v3/account", headers=basic()) as resp:
        assert resp.status == 200  # the faults wait for /v3/sms/send
    for _ in range(2):
        status, payload = await send(http, sim, {"to": "+61411111111", "body": "x"})
        assert (status, payload) == (429, TOO_MANY)
    sim.fail_next("500", endpoint=None)
    async with http.get(f"{sim.base_url}/v3/account", headers=basic()) as resp:
        assert resp.status == 500


async def test_rate_limit_headers_count_down_and_can_be_enforced(
    http: aiohttp.ClientSession,
) -> None:
    async with ClickSendSimulator(
        [(USER, KEY)], endpoint_rate_limits={"/v3/account": 2}, enforce_rate_limits=True
    ) as sim:
        seen = []
        for _ in range(3):
            async with http.get(f"{sim.base_url}/v3/account", headers=basic()) as resp:
                seen.append((resp.status, resp.headers.get("x-ratelimit-remaining")))
                if resp.status == 429:
                    assert await resp.json() == TOO_MANY
                    assert 0 < int(resp.headers["Retry-After"]) <= 60
        assert seen == [(200, "1"), (200, "0"), (429, None)]


# ---- account, subaccounts, numbers ---------------------------------------------------------


async def test_subaccounts_page_like_laravel(
    sim: ClickSendSimulator, http: aiohttp.ClientSession
) -> None:
    for i in range(40):
        sim.add_account(f"sub{i:02d}", f"KEY-{i}")
    expected = [a.subaccount_id for a in sim.accounts.values() if a.user_id == sim.user_id]
    assert len(expected) == 41  # the test accounts belong to other users

    url: str | None = f"{sim.base_url}/v3/subaccounts?page=1&limit=15"
    pages: list[dict[str, Any]] = []
    while url:
        async with http.get(url, headers=basic()) as resp:
            assert resp.status == 200
            payload = await resp.json()
        assert payload["response_code"] == "SUCCESS"
        pages.append(payload["data"])
        url = payload["data"]["next_page_url"]
    assert [p["current_page"] for p in pages] == [1, 2, 3]
    assert [(p["from"], p["to"], len(p["data"])) for p in pages] == [
        (1, 15, 15),
        (16, 30, 15),
        (31, 41, 11),
    ]
    assert all(list(p) == PAGINATOR_KEYS for p in pages)
    assert {(p["total"], p["per_page"], p["last_page"]) for p in pages} == {(41, 15, 3)}
    assert pages[0]["prev_page_url"] is None and pages[2]["prev_page_url"].endswith(
        "page=2&limit=15"
    )
    assert [r["subaccount_id"] for p in pages for r in p["data"]] == expected
    first = pages[0]["data"][0]
    assert (first["api_username"], first["api_key"], first["is_main"]) == (USER, KEY, 1)
    assert first["email"] and "access_sms" in first and "sign_up_type" in first

    for query, per_page, count in [("limit=5", 15, 15), ("limit=500", 100, 41), ("", 15, 15)]:
        async with http.get(f"{sim.base_url}/v3/subaccounts?{query}", headers=basic()) as resp:
            data = (await resp.json())["data"]
        assert (data["per_page"], len(data["data"])) == (per_page, count)
    async with http.get(f"{sim.base_url}/v3/subaccounts?page=9", headers=basic()) as resp:
        data = (await resp.json())["data"]
    assert (data["data"], data["from"], data["to"], data["next_page_url"]) == ([], None, None, None)

    wanted = sim.accounts["sub07"].subaccount_id
    async with http.get(f"{sim.base_url}/v3/subaccounts/{wanted}", headers=basic()) as resp:
        assert (await resp.json())["data"]["api_username"] == "sub07"


async def test_history_lists_stored_sends_by_date_and_page(
    sim: ClickSendSimulator, http: aiohttp.ClientSession
) -> None:
    """What ClickSend stored, including sends answered with a 500 or after a timeout."""
    sim.fail_next("store_then_500")
    sim.fail_next("500")  # not stored: not in the history
    sim.fail_next("delay", delay=0.2)
    for n in range(3):
        await send(http, sim, {"to": "+61411111111", "body": "x", "custom_string": f"fault-{n}"})
    messages = [{"to": "+61422222222", "body": f"n{n}", "custom_string": f"id-{n}"}
                for n in range(20)]
    status, _ = await send(http, sim, *messages)
    assert status == 200
    other = sim.add_account("other-sub", "OTHER-KEY")  # a subaccount sees only its own
    async with http.post(f"{sim.base_url}/v3/sms/send", headers=basic("other-sub", "OTHER-KEY"),
                         json={"messages": [{"to": "+61433333333", "body": "theirs",
                                             "custom_string": "other"}]}) as resp:
        assert resp.status == 200
    now = int(time.time())

    async def history(query: str, headers: dict[str, str]) -> list[dict[str, Any]]:
        url: str | None = f"{sim.base_url}/v3/sms/history?{query}"
        pages: list[dict[str, Any]] = []
        while url:
            async with http.get(url, headers=headers) as resp:
                payload = await resp.json()
            assert resp.status == 200 and payload["response_code"] == "SUCCESS", payload
            assert list(payload["data"]) == PAGINATOR_KEYS
            pages.append(payload["data"])
            url = payload["data"]["next_page_url"]
        return pages

    pages = await history(f"date_from={now - 60}&date_to={now + 60}&limit=15", basic())
    assert [(p["current_page"], p["last_page"], p["total"]) for p in pages] == [
        (1, 2, 23), (2, 2, 23)]
    assert "date_from=" in (pages[1]["prev_page_url"] or "")  # filters kept in the links
    records = [r for p in pages for r in p["data"]]
    assert sorted(r["custom_string"] for r in records) == sorted(
        ["fault-0", "fault-2", "other"] + [f"id-{n}" for n in range(20)])
    stored = {m["custom_string"]: m["message_id"] for m in sim.sent_messages}
    assert all(r["message_id"] == stored[r["custom_string"]] for r in records)
    assert all(r["to"] and r["from"] and r["body"] and r["status"] and r["date"] for r in records)
    assert [p["data"] for p in await history(f"date_from={now + 61}", basic())] == [[]]
    assert [p["data"] for p in await history(f"date_to={now - 61}", basic())] == [[]]
    theirs = await history("", basic("other-sub", "OTHER-KEY"))
    assert [r["custom_string"] for p in theirs for r in p["data"]] == ["other"]
    assert theirs[0]["data"][0]["subaccount_id"] == other.subaccount_id


async def test_account_carries_the_calling_subaccount(
    sim: ClickSendSimulator, http: aiohttp.ClientSession
) -> None:
    sub = sim.add_account("second", "SECOND-KEY")
    async with http.get(f"{sim.base_url}/v3/account", headers=basic("second", "SECOND-KEY")) as r:
        assert r.status == 200
        payload = await r.json()
        assert r.headers["x-ratelimit-limit"] == "20"
    assert payload["response_msg"] == "Here's your account"
    data = payload["data"]
    assert data["user_id"] == sim.user_id and data["username"] == USER
    assert isinstance(data["balance"], str) and data["setting_sms_message_char_limit"] == 6
    assert data["_currency"]["currency_name_short"] == "USD"
    assert data["_subaccount"]["subaccount_id"] == sub.subaccount_id
    assert data["_subaccount"]["api_key"] == "SECOND-KEY"


async def test_numbers_shape_and_empty_list(
    sim: ClickSendSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{sim.base_url}/v3/numbers", headers=basic()) as resp:
        data = (await resp.json())["data"]
    assert (data["total"], data["current_page"], data["last_page"], data["data"]) == (0, 1, 0, [])

    sim.add_number("+61411111111")
    sim.add_number("+61422222222", type="mms", status=1, notes="Business line")
    async with http.get(f"{sim.base_url}/v3/numbers?page=1&limit=15", headers=basic()) as resp:
        payload = await resp.json()
    assert payload["response_msg"] == "Here are you dedicated numbers."
    data = payload["data"]
    assert list(data) == [*PAGINATOR_KEYS, "_currency"]
    first, second = data["data"]
    assert first | {"number_guid": ""} == {
        "dedicated_number": "+61411111111",
        "country": "AU",
        "price": "18.59",
        "_country_name": "Australia",
        "notes": None,
        "type": "sms",
        "number_type": "longcode",
        "number_category": None,
        "number_guid": "",
        "form_submission_id": None,
        "status": {
            "value": 0,
            "label": "REGISTRATION_NOT_REQUIRED",
            "description": "Your number is ready to go.",
            "name": "Ready to use",
        },
    }
    assert second["status"]["label"] == "REGISTRATION_NOT_INITIATED"
    # A dedicated number now replaces the shared pool when `from` is omitted.
    _, sent = await send(http, sim, {"to": "+61433333333", "body": "x"})
    assert sent["data"]["messages"][0]["from"] == "+61411111111"


# ---- recording and control API -------------------------------------------------------------


async def test_messages_endpoint_and_reset(
    sim: ClickSendSimulator, http: aiohttp.ClientSession
) -> None:
    await send(http, sim, {"to": "+61411111111", "body": "x", "custom_string": "abc"})
    async with http.get(f"{sim.base_url}/_sim/messages") as resp:
        recorded = await resp.json()
    (req,) = recorded["requests"]
    assert req["headers"]["Authorization"] == basic()["Authorization"]
    assert req["body"]["messages"][0]["custom_string"] == "abc"
    assert req["messages"][0]["status"] == "SUCCESS"
    assert [m["custom_string"] for m in recorded["messages"]] == ["abc"]

    sim.fail_next("500")
    async with http.post(f"{sim.base_url}/_sim/reset") as resp:
        assert resp.status == 200
    assert (sim.requests, sim.sent_messages, sim.faults) == ([], [], [])
    async with http.get(f"{sim.base_url}/_sim/messages") as resp:
        assert await resp.json() == {"requests": [], "messages": []}


async def test_accounts_and_forced_status_over_http(
    sim: ClickSendSimulator, http: aiohttp.ClientSession
) -> None:
    body = {"username": "other", "api_key": "OTHER-KEY", "subaccount_id": 900}
    async with http.post(f"{sim.base_url}/_sim/accounts", json=body) as resp:
        assert (await resp.json())["subaccount_id"] == 900
    body = {"number": "+15550000001", "status": "THROTTLED"}
    async with http.post(f"{sim.base_url}/_sim/force_status", json=body) as resp:
        assert resp.status == 200
    async with http.post(
        f"{sim.base_url}/v3/sms/send",
        json={"messages": [{"to": "+15550000001", "body": "x"}]},
        headers=basic("other", "OTHER-KEY"),
    ) as resp:
        assert (await resp.json())["data"]["messages"][0]["status"] == "THROTTLED"
    async with http.post(f"{sim.base_url}/_sim/force_status", data=b"nope") as resp:
        assert resp.status == 400


# ---- webhooks pushed to a gateway ----------------------------------------------------------

# Reference §3: n8n JSON sample key order and the third-party form sample's field order.
INBOUND_JSON_KEYS = [
    "originalsenderid", "body", "message", "sms", "from", "to", "timestamp", "message_id",
    "original_message_id", "original_body", "user_id", "subaccount_id", "custom_string",
]  # fmt: skip
INBOUND_FORM_KEYS = [
    "originalsenderid", "body", "message", "sms", "from", "to", "timestamp", "message_id",
    "original_message_id", "originalmessageid", "original_body", "originalmessage", "user_id",
    "subaccount_id", "custom_string", "customstring",
]  # fmt: skip
RECEIPT_KEYS = [
    "timestamp_send", "timestamp", "message_id", "status_code", "status_text", "error_code",
    "error_text", "custom_string", "subaccount_id", "message_type", "digits",
]  # fmt: skip


async def test_push_inbound_post_form_echoes_the_original_message(
    sim: ClickSendSimulator, http: aiohttp.ClientSession
) -> None:
    _, sent = await send(
        http,
        sim,
        {"from": "+61477485926", "to": "+61429912603", "body": "TESTING", "custom_string": "c1"},
    )
    outbound = sent["data"]["messages"][0]
    async with Receiver() as gw:
        result = await sim.push_inbound(
            gw.url + "/webhook/clicksend?token=s3cret", "+61429912603", "+61477485926", "reply"
        )
    assert (result.status, result.body) == (202, "accepted")
    (call,) = gw.calls
    assert (call["method"], call["path"]) == ("POST", "/webhook/clicksend")
    assert call["query"] == [("token", "s3cret")]
    assert call["content_type"] == "application/x-www-form-urlencoded"
    form = parse_qsl(call["raw"], keep_blank_values=True)
    assert [k for k, _ in form] == INBOUND_FORM_KEYS
    fields = dict(form)
    assert fields["from"] == fields["sms"] == "+61429912603"
    assert fields["to"] == fields["originalsenderid"] == "+61477485926"
    assert fields["body"] == fields["message"] == "reply"
    assert fields["original_message_id"] == fields["originalmessageid"] == outbound["message_id"]
    assert fields["original_body"] == fields["originalmessage"] == "TESTING"
    assert fields["custom_string"] == fields["customstring"] == "c1"
    assert fields["subaccount_id"] == str(sim.accounts[USER].subaccount_id)
    assert fields["timestamp"].isdigit() and UUID_UPPER.fullmatch(fields["message_id"])


async def test_push_inbound_json_and_get(sim: ClickSendSimulator) -> None:
    async with Receiver() as gw:
        await sim.push_inbound(
            gw.url + "/in",
            "+61429912603",
            "+61477485926",
            "hello",
            webhook_type="json",
            message_id="1F12D781-99C1-6D94-96FE-F5A311C8997D",
            user_id=304497,
            subaccount_id=745158,
        )
        await sim.push_inbound(
            gw.url + "/in?token=t", "+61429912603", "+61477485926", "hi there", webhook_type="get"
        )
    json_call, get_call = gw.calls
    assert json_call["content_type"] == "application/json"
    payload = json.loads(json_call["raw"])
    assert list(payload) == INBOUND_JSON_KEYS
    assert payload["message_id"] == "1F12D781-99C1-6D94-96FE-F5A311C8997D"
    assert (payload["user_id"], payload["subaccount_id"]) == (304497, 745158)
    assert isinstance(payload["timestamp"], int)
    # Unsolicited: nothing was sent to this number before.
    assert (payload["original_message_id"], payload["original_body"]) == ("", "")
    assert payload["custom_string"] == ""

    assert (get_call["method"], get_call["raw"]) == ("GET", "")
    assert [k for k, _ in get_call["query"]] == ["token", *INBOUND_FORM_KEYS]
    assert dict(get_call["query"])["body"] == "hi there"


async def test_push_receipt_form_json_and_over_http(
    sim: ClickSendSimulator, http: aiohttp.ClientSession
) -> None:
    _, sent = await send(http, sim, {"to": "+61411111111", "body": "x", "custom_string": "c9"})
    message_id = sent["data"]["messages"][0]["message_id"]
    async with Receiver() as gw:
        await sim.push_receipt(gw.url + "/dlr", message_id)
        await sim.push_receipt(gw.url + "/dlr", message_id, 301, fmt="json")
        body = {"url": gw.url + "/dlr", "message_id": message_id, "status_code": 200}
        async with http.post(f"{sim.base_url}/_sim/receipt", json=body) as resp:
            relayed = await resp.json()
    assert relayed == {"status": 202, "body": "accepted", "url": gw.url + "/dlr"}
    form_call, json_call, http_call = gw.calls

    form = parse_qsl(form_call["raw"], keep_blank_values=True)
    assert form_call["content_type"] == "application/x-www-form-urlencoded"
    assert [k for k, _ in form] == RECEIPT_KEYS
    fields = dict(form)
    assert (fields["message_id"], fields["status_code"], fields["custom_string"]) == (
        message_id,
        "201",
        "c9",
    )
    assert fields["status_text"] == "Success: Message received on handset."
    assert (fields["error_code"], fields["message_type"]) == ("", "sms")

    receipt = json.loads(json_call["raw"])
    assert list(receipt) == RECEIPT_KEYS
    assert receipt["status_code"] == "301" and isinstance(receipt["error_code"], int)
    assert receipt["subaccount_id"] == sim.accounts[USER].subaccount_id
    assert dict(parse_qsl(http_call["raw"]))["status_code"] == "200"


async def test_push_inbound_over_http_reports_the_gateway_answer(
    sim: ClickSendSimulator, http: aiohttp.ClientSession
) -> None:
    async with Receiver() as gw:
        body = {
            "url": gw.url + "/in",
            "webhook_type": "json",
            "from": "+61429912603",
            "to": "+61477485926",
            "body": "via http",
            "custom_string": "xyz",
        }
        async with http.post(f"{sim.base_url}/_sim/inbound", json=body) as resp:
            assert await resp.json() == {"status": 202, "body": "accepted", "url": gw.url + "/in"}
        dead_url = gw.url
    assert '"custom_string": "xyz"' in gw.calls[0]["raw"]
    async with http.post(f"{sim.base_url}/_sim/inbound", json=body | {"url": dead_url}) as resp:
        assert resp.status == 502
    async with http.post(f"{sim.base_url}/_sim/inbound", json={"url": "x"}) as resp:
        assert resp.status == 400


# ---- the official SDK as an oracle ---------------------------------------------------------


async def test_responses_parse_with_the_official_sdk(
    sim: ClickSendSimulator, http: aiohttp.ClientSession
) -> None:
    models = pytest.importorskip("clicksend.models")
    sim.add_number("+61411111111")
    _, sent = await send(
        http, sim, {"to": "+61422222222", "body": "sdk check", "custom_string": "cs"}
    )
    parsed = models.SendSms.from_dict(sent)
    assert parsed.data.messages[0].custom_string == "cs"
    assert parsed.data.messages[0].message_price == "0.0000"

    async def fetch(path: str) -> Any:
        async with http.get(sim.base_url + path, headers=basic()) as resp:
            return await resp.json()

    subs = models.ViewSubaccounts.from_dict(await fetch("/v3/subaccounts"))
    assert subs.data.data[0].api_username == USER
    account = models.ViewAccountDetails.from_dict(await fetch("/v3/account"))
    assert account.data.subaccount.api_username == USER
    numbers = models.ViewYourNumbers.from_dict(await fetch("/v3/numbers"))
    assert numbers.data.data[0].dedicated_number == "+61411111111"
    assert models.Model400Error.from_dict(UNAUTHORIZED).response_code == "UNAUTHORIZED"


# ---- helpers and CLI entry point -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "parts"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("a" * 918, 6),
        ("é" * 160, 1),  # é is in the GSM-7 basic set
        ("€" * 80, 1),  # extension-table characters take two septets
        ("€" * 81, 2),
        ("ж" * 70, 1),
        ("ж" * 71, 2),
        ("ж" * 134, 2),
        ("ж" * 135, 3),
        ("😀" * 35, 1),  # two UTF-16 units each
        ("a\n" * 53, 1),  # line breaks count as two characters
        ("a\n" * 53 + "ab", 2),
    ],
)
def test_message_parts(body: str, parts: int) -> None:
    assert message_parts(body) == parts


async def test_serve_forever_prints_no_secret(
    capsys: pytest.CaptureFixture[str], http: aiohttp.ClientSession
) -> None:
    task = asyncio.create_task(serve_forever("127.0.0.1", 0, USER, KEY))
    out = ""

    def started() -> bool:
        nonlocal out
        out += capsys.readouterr().out
        return "http://" in out

    try:
        await wait_for(started)
        base = re.search(r"http://[0-9.]+:[0-9]+", out)
        assert base is not None and KEY not in out
        async with http.get(base.group(0) + "/v3/account", headers=basic()) as resp:
            assert resp.status == 200
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
