"""Issue 16 acceptance, outbound: an MMS from the API reaches the ClickSend simulator's
MMS endpoint with its pictures (uploaded first) and subject; a receipt marks it delivered."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import ClientSession

from pbxsms.core.model.events import OutboundRequest, State
from pbxsms.sim.clicksend import ClickSendSimulator
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.helpers import wait_until
from tests.media.support import API_TOKEN, CUSTOMER, NUMBER, TOKEN, StartGateway, start
from tests.support.delivery import HOOK_TOKEN, ORG, last_on
from tests.support.gateway import Gateway
from tests.support.media import JPEG, png, sha256
from tests.support.smtp import SmtpServer

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


async def upload(http: ClientSession, gateway: Gateway, data: bytes,
                 content_type: str) -> dict[str, Any]:
    async with http.post(f"{gateway.url}/api/v1/media", data=data,
                         headers={**AUTH, "Content-Type": content_type}) as response:
        assert response.status == 201, await response.text()
        answer: dict[str, Any] = await response.json()
        return answer


async def state_of(http: ClientSession, gateway: Gateway, message_id: str) -> dict[str, Any]:
    async with http.get(f"{gateway.url}/api/v1/messages/{message_id}",
                        headers=AUTH) as response:
        record: dict[str, Any] = await response.json() if response.status == 200 else {}
        return record


async def test_an_mms_from_the_api_reaches_clicksend_and_a_receipt_marks_it_delivered(
    start_gateway: StartGateway, clicksend: ClickSendSimulator, app: MobileAppSimulator,
    smtp: SmtpServer,
) -> None:
    gateway = await start(start_gateway, clicksend, app, smtp)
    pictures = [(png(7), "image/png"), (JPEG, "image/jpeg")]
    async with ClientSession() as http:
        stored = [await upload(http, gateway, data, kind) for data, kind in pictures]
        assert [s["sha256"] for s in stored] == [sha256(data) for data, _ in pictures]
        async with http.post(f"{gateway.url}/api/v1/messages", headers=AUTH, json={
                "from": NUMBER, "to": CUSTOMER, "body": "Your invoice and the map",
                "subject": "Invoice 42", "media": [{"id": s["id"]} for s in stored],
        }) as response:
            assert response.status == 202, await response.text()
            message_id = (await response.json())["id"]

        async def accepted() -> bool:
            return (await state_of(http, gateway, message_id)).get("state") == "accepted"

        await wait_until(accepted, 15, "the MMS accepted")

        # Two pictures: two MMS, each with its own uploaded file and the subject.
        sends = [r for r in clicksend.requests if r.path == "/v3/mms/send"]
        assert len(sends) == 2
        bodies = [r.body for r in sends]
        assert [b["messages"][0]["subject"] for b in bodies] == ["Invoice 42"] * 2
        assert [b["messages"][0]["body"] for b in bodies] == ["Your invoice and the map",
                                                              "(2/2)"]
        assert {b["messages"][0]["custom_string"] for b in bodies} == {message_id}
        uploads = {u["url"]: u for u in (await (await http.get(
            f"{clicksend.base_url}/_sim/uploads")).json())["uploads"]}
        assert [uploads[b["media_file"]]["sha256"] for b in bodies] == \
            [sha256(data) for data, _ in pictures]
        assert all(r.status == 200 for r in sends)
        mms = [m for m in clicksend.sent_messages if m.get("message_type") == "mms"]
        assert [m["status"] for m in mms] == ["SUCCESS", "SUCCESS"]

        receipt = await clicksend.push_receipt(
            f"{gateway.url}/webhook/clicksend/dlr?token={TOKEN}", mms[0]["message_id"], 201,
            message_type="mms")
        assert receipt.status == 200, receipt.body

        async def delivered() -> bool:
            return (await state_of(http, gateway, message_id)).get("state") == "delivered"

        await wait_until(delivered, 10, "the MMS delivered")
        record = await state_of(http, gateway, message_id)
        accepted_entry = next(h for h in record["history"] if h["state"] == "accepted")
        assert accepted_entry["provider_message_id"] == mms[0]["message_id"]


async def test_media_the_gateway_must_refuse(
    start_gateway: StartGateway, clicksend: ClickSendSimulator, app: MobileAppSimulator,
    smtp: SmtpServer,
) -> None:
    gateway = await start(start_gateway, clicksend, app, smtp)
    async with ClientSession() as http:
        # Bytes that are not what they say: refused at the upload.
        async with http.post(f"{gateway.url}/api/v1/media", data=b"<html></html>",
                             headers={**AUTH, "Content-Type": "image/jpeg"}) as response:
            assert response.status == 422
            assert (await response.json())["error"] == \
                "declared image/jpeg but the bytes are of no allowed type"
        # An id that names nothing stored: refused at once.
        async with http.post(f"{gateway.url}/api/v1/messages", headers=AUTH, json={
                "from": NUMBER, "to": CUSTOMER, "body": "x",
                "media": [{"id": "A" * 32}]}) as response:
            assert response.status == 422
            assert (await response.json())["field"] == "media[0]"
        # A URL off the allow-list: the send fails with the fetch's reason.
        async with http.post(f"{gateway.url}/api/v1/messages", headers=AUTH, json={
                "from": NUMBER, "to": CUSTOMER, "body": "x",
                "media": [{"url": "https://127.0.0.1/a.jpg"}]}) as response:
            assert response.status == 202
            message_id = (await response.json())["id"]

        async def failed() -> bool:
            return (await state_of(http, gateway, message_id)).get("state") == "failed"

        await wait_until(failed, 10, f"the MMS failed: {await state_of(http, gateway, message_id)}")
        record = await state_of(http, gateway, message_id)
        reasons = [h["reason"] for h in record["history"] if h["state"] == State.FAILED]
        assert reasons == ["media https://127.0.0.1: the host is an IP address (127.0.0.1): "
                           "127.0.0.1 is a loopback address"]
    assert not [r for r in clicksend.requests if r.path.startswith("/v3/mms")]


async def test_a_picture_replied_from_the_app_is_an_mms_fetched_under_the_outbound_hosts(
    start_gateway: StartGateway, clicksend: ClickSendSimulator, app: MobileAppSimulator,
    smtp: SmtpServer,
) -> None:
    gateway = await start(start_gateway, clicksend, app, smtp,
                          PBXSMS_MEDIA_OUTBOUND_HOSTS='["media.app.example"]')
    answer = await app.reply(f"{gateway.url}/webhook/ringotel", HOOK_TOKEN,
                             "201", CUSTOMER, "https://cdn.elsewhere.example/p.jpg", ORG,
                             messageid="app-msg-1", type=2)
    assert answer.status == 200, answer.body
    message_id = json.loads(answer.body)["id"]
    request = OutboundRequest.model_validate(await last_on(gateway.runtime, "sms.outbound"))
    assert (request.media_urls, request.body) == (["https://cdn.elsewhere.example/p.jpg"], "")
    async with ClientSession() as http:

        async def failed() -> bool:
            return (await state_of(http, gateway, message_id)).get("state") == "failed"

        await wait_until(failed, 10, "the reply failed")
        record = await state_of(http, gateway, message_id)
    assert [h["reason"] for h in record["history"] if h["state"] == "failed"] == [
        "media https://cdn.elsewhere.example: host cdn.elsewhere.example is not on the "
        "allow-list"]
