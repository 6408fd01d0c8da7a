"""`/api/v1/numbers`: Bearer token, numbers in any format, 422 naming the field."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientSession

from tests.support.gateway import StartGateway

RECORD = {"provider": "clicksend", "extension": "101", "domain": "pbx.example.com",
          "email": ["desk@example.com"], "description": "Front desk"}


async def call(http: ClientSession, method: str, url: str, **kw: Any) -> tuple[int, Any]:
    async with http.request(method, url, **kw) as response:
        body = await response.json() if response.status != 204 else None
        return response.status, body


async def test_records_are_created_read_replaced_and_removed(
        start: StartGateway, http: ClientSession) -> None:
    gateway = await start()
    api = f"{gateway.url}/api/v1/numbers"
    status, body = await call(http, "PUT", f"{api}/%2B61%20411%20111%20111", json=RECORD)
    assert status == 201
    assert body == {**RECORD, "number": "+61411111111", "enabled": True,
                    "mobileapp_org": None, "sip": False, "managed_by_file": None}
    assert (await call(http, "GET", f"{api}/0411111111"))[1] == body  # region AU
    status, body = await call(http, "PUT", f"{api}/+61411111111",  # a literal + works too
                              json={"number": "0411 111 111", "provider": "clicksend",
                                    "email": "a@example.com, b@example.com"})
    assert status == 200
    assert (body["extension"], body["email"]) == (None, ["a@example.com", "b@example.com"])
    assert (await call(http, "GET", api))[1] == {"numbers": [body]}
    assert (await call(http, "GET", f"{api}?extension=101"))[1] == {"numbers": []}
    assert (await call(http, "DELETE", f"{api}/0411111111"))[0] == 204
    assert await call(http, "GET", f"{api}/0411111111") == (
        404, {"error": "no message settings for this number", "field": "number"})
    assert (await call(http, "DELETE", f"{api}/0411111111"))[0] == 404


async def test_invalid_input_is_refused_naming_the_field(
        start: StartGateway, http: ClientSession) -> None:
    gateway = await start()
    api = f"{gateway.url}/api/v1/numbers"
    cases: list[tuple[str, Any, int, str | None]] = [
        ("0411111111", {**RECORD, "email": "desk@"}, 422, "email"),
        ("0411111111", {**RECORD, "provider": "email"}, 422, "provider"),
        ("0411111111", {**RECORD, "number": "+61422222222"}, 422, "number"),
        ("0411111111", {**RECORD, "colour": "blue"}, 422, "colour"),
        ("0411111111", ["not", "an", "object"], 422, "record"),
        ("not-a-number", RECORD, 422, "number"),
    ]
    for number, body, status, field in cases:
        answer = await call(http, "PUT", f"{api}/{number}", json=body)
        assert (answer[0], answer[1].get("field")) == (status, field), (body, answer)
    assert (await call(http, "GET", f"{api}/12"))[1]["field"] == "number"
    status, body = await call(http, "PUT", f"{api}/0411111111", data=b"{",
                              headers={"Content-Type": "application/json"})
    assert status == 400
    status, body = await call(http, "PUT", f"{api}/0411111111", data=b"provider=clicksend",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415
    assert (await call(http, "GET", api))[1] == {"numbers": []}  # nothing was stored

    async with ClientSession() as anonymous:
        assert (await call(anonymous, "GET", api))[0] == 401
        assert (await call(anonymous, "PUT", f"{api}/0411111111", json=RECORD))[0] == 401
    async with ClientSession(headers={"Authorization": "Bearer wrong"}) as wrong:
        assert (await call(wrong, "DELETE", f"{api}/0411111111"))[0] == 401


async def test_a_batch_is_stored_whole_or_not_at_all(
        start: StartGateway, http: ClientSession) -> None:
    gateway = await start()
    api = f"{gateway.url}/api/v1/numbers"
    rows = [{**RECORD, "number": "0411111111"}, {**RECORD, "number": "0422222222"}]
    bad = [rows[0], {**rows[1], "enabled": "maybe"}]
    assert await call(http, "PUT", api, json={"numbers": bad}) == (
        422, {"error": "Input should be a valid boolean, unable to interpret input",
              "field": "numbers[1].enabled"})
    duplicate = [rows[0], {**rows[1], "number": "+61 411 111 111"}]
    status, body = await call(http, "PUT", api, json={"numbers": duplicate})
    assert (status, body["field"]) == (422, "numbers[1].number")
    assert (await call(http, "PUT", api, json=rows))[1]["field"] == "numbers"
    assert (await call(http, "GET", api))[1] == {"numbers": []}

    status, body = await call(http, "PUT", f"{api}?dry_run=true", json={"numbers": rows})
    assert (status, body["written"]) == (200, 0)
    assert (await call(http, "GET", api))[1] == {"numbers": []}
    status, body = await call(http, "PUT", api, json={"numbers": rows})
    assert (status, body["written"]) == (200, 2)
    status, body = await call(http, "PUT", api, json={"numbers": rows})
    assert (status, body["written"]) == (200, 0)  # unchanged records are not rewritten
    assert [r["number"] for r in (await call(http, "GET", api))[1]["numbers"]] == [
        "+61411111111", "+61422222222"]


async def test_our_number_must_be_valid_and_a_misread_one_says_what_to_write(
        start: StartGateway, http: ClientSession) -> None:
    gateway = await start(env={"PBXSMS_DEFAULT_REGION": "US"})
    api = f"{gateway.url}/api/v1/numbers"
    status, body = await call(http, "PUT", f"{api}/0414%20444%20444", json=RECORD)
    assert status == 422 and body["field"] == "number"
    assert body["error"] == ("'0414 444 444' read as +10414444444 (PBXSMS_DEFAULT_REGION=US) "
                             "is not valid: write +61414444444 or set "
                             "PBXSMS_DEFAULT_REGION=AU (or +358414444444 for FI)")
    # Possible but not valid, written with +: refused too; nothing was stored.
    status, body = await call(http, "PUT", f"{api}/%2B15551234567", json=RECORD)
    assert status == 422 and "not a valid number in its country (+1, US)" in body["error"]
    assert (await call(http, "GET", api))[1] == {"numbers": []}
