"""The ClickSend simulator's MMS: `/v3/uploads`, `/v3/mms/send` and the media it hosts."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from pbxsms.sim.clicksend import ClickSendSimulator

USER, KEY = "apiuser", "key-1"
JPEG = b"\xff\xd8\xff\xe0" + bytes(200)


@pytest.fixture
async def sim() -> AsyncIterator[ClickSendSimulator]:
    async with ClickSendSimulator([(USER, KEY)]) as simulator:
        yield simulator


async def call(sim: ClickSendSimulator, path: str, body: Any,
               query: dict[str, str] | None = None) -> tuple[int, Any]:
    auth = {"Authorization": aiohttp.encode_basic_auth(USER, KEY)}
    async with aiohttp.ClientSession(headers=auth) as http, \
            http.post(f"{sim.base_url}{path}", json=body, params=query) as response:
        return response.status, await response.json()


async def upload(sim: ClickSendSimulator, data: bytes) -> str:
    status, answer = await call(sim, "/v3/uploads", {"content": base64.b64encode(data).decode()},
                                {"convert": "mms"})
    assert status == 200, answer
    url: str = answer["data"]["_url"]
    return url


def mms(url: str, **message: Any) -> dict[str, Any]:
    return {"media_file": url, "messages": [{"to": "+61411111111", "from": "+61422222222",
                                             "body": "hi", "subject": "Hello", **message}]}


async def test_an_upload_is_sent_as_an_mms_and_its_link_downloads_the_file(
    sim: ClickSendSimulator,
) -> None:
    url = await upload(sim, JPEG)
    status, answer = await call(sim, "/v3/mms/send", mms(url, custom_string="ours"))
    assert status == 200
    (sent,) = answer["data"]["messages"]
    assert (sent["status"], sent["subject"], sent["_media_file_url"], sent["message_parts"],
            sent["custom_string"]) == ("SUCCESS", "Hello", url, 1, "ours")
    assert answer["data"]["queued_count"] == 1
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200 and await response.read() == JPEG


@pytest.mark.parametrize(("message", "status"), [
    ({"subject": ""}, "SUBJECT_REQUIRED"),
    ({"body": ""}, "EMPTY_MESSAGE"),
    ({"to": "not a number"}, "INVALID_RECIPIENT"),
])
async def test_per_message_refusals(sim: ClickSendSimulator, message: dict[str, str],
                                    status: str) -> None:
    url = await upload(sim, JPEG)
    code, answer = await call(sim, "/v3/mms/send", mms(url, **message))
    assert code == 200
    assert answer["data"]["messages"][0]["status"] == status
    assert sim.sent_messages == []


async def test_an_expired_upload_or_a_png_link_is_an_invalid_media_file(
    sim: ClickSendSimulator,
) -> None:
    url = await upload(sim, JPEG)
    hosted = sim.mms.file_of(url)
    assert hosted is not None and hosted.expires is not None
    assert 590 < hosted.expires - time.time() <= 600  # ClickSend: 10 minutes
    hosted.expires = time.time() - 1
    _, answer = await call(sim, "/v3/mms/send", mms(url))
    assert answer["data"]["messages"][0]["status"] == "INVALID_MEDIA_FILE"
    _, answer = await call(sim, "/v3/mms/send", mms("https://example.com/photo.png"))
    assert answer["data"]["messages"][0]["status"] == "INVALID_MEDIA_FILE"


async def test_bad_calls_get_400(sim: ClickSendSimulator) -> None:
    status, answer = await call(sim, "/v3/uploads", {"content": "not base64!"},
                                {"convert": "mms"})
    assert (status, answer["response_code"]) == (400, "BAD_REQUEST")
    status, _ = await call(sim, "/v3/uploads", {"content": "aGk="})
    assert status == 400  # no `convert`
    status, answer = await call(sim, "/v3/mms/send", {"messages": []})
    assert (status, answer["response_code"]) == (400, "BAD_REQUEST")
