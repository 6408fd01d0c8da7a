"""Billing-true parts: counted as ClickSend bills them, shown in the send API's answer."""

from __future__ import annotations

import pytest
from aiohttp import ClientSession
from hypothesis import given
from hypothesis import strategies as st

from pbxsms.core.model.segments import GSM_BASIC, GSM_EXTENSION, count_segments
from pbxsms.plugins.clicksend.sender import BILLING
from pbxsms.sim.clicksend import ClickSendSimulator, message_parts
from tests.helpers import wait_until
from tests.support.gateway import StartGateway


@given(st.lists(st.sampled_from([*sorted(GSM_BASIC | GSM_EXTENSION), "\r\n", "ж", "😀"]),
                max_size=700).map("".join))
def test_clicksends_billing_is_the_simulators_message_parts(text: str) -> None:
    # The simulator follows ClickSend's published rules (line breaks count twice).
    expected = message_parts(text) if text else 0
    assert count_segments(text, BILLING).segments == expected


@pytest.mark.parametrize(("text", "standard", "billed"), [
    ("a" * 150 + "\n" * 10, 1, 2),  # 160 characters, 170 as ClickSend counts them
    ("line\n" * 30, 1, 2),  # 150 characters, 180 units
    ("line\r\n" * 26, 1, 1),  # a CRLF is one break: two units, as it was
    ("a" * 152 + "€" + "a" * 152, 3, 2),  # divided, as if the € could be split
])
def test_clicksend_counts_line_breaks_twice(text: str, standard: int, billed: int) -> None:
    assert count_segments(text).segments == standard
    assert count_segments(text, BILLING).segments == billed


async def test_the_send_api_answers_the_billed_count(start_gateway: StartGateway) -> None:
    async with ClickSendSimulator([("pbx-user", "pbx-key")]) as clicksend:
        gateway = await start_gateway(env={
            "CLICKSEND_USERNAME": "pbx-user", "CLICKSEND_API_KEY": "pbx-key",
            "CLICKSEND_BASE_URL": clicksend.base_url, "PBXSMS_API_TOKEN": "t0ken"})
        body = "Line\n" * 30  # 150 characters: one part by the book, two as billed
        async with ClientSession(headers={"Authorization": "Bearer t0ken"}) as http, \
                http.post(f"{gateway.url}/api/v1/messages", json={
                    "from": "+61411111111", "to": "+61491570006", "body": body}) as response:
            assert response.status == 202
            answer = await response.json()
        assert (answer["segments"], answer["encoding"]) == (2, "GSM-7")
        await wait_until(lambda: len(clicksend.sent_messages) == 1, message="the send")
        assert clicksend.sent_messages[0]["message_parts"] == 2
