"""Helpers of the carrier tests (Telnyx, Bandwidth): send through the API, wait for a
message's state, count what the stream holds."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import ClientSession

from pbxsms.core.stores.status import StatusRecord
from tests.helpers import wait_until
from tests.support.gateway import Gateway

API_TOKEN = "api-t0ken"


async def send(gateway: Gateway, sender: str, to: str, body: str = "hello") -> str:
    """Send through the API (PBXSMS_API_TOKEN = API_TOKEN); the message id."""
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with ClientSession(headers=headers) as http, http.post(
            f"{gateway.url}/api/v1/messages",
            json={"from": sender, "to": to, "body": body}) as response:
        answer: dict[str, Any] = await response.json()
        assert response.status == 202, answer
    return str(answer["id"])


async def settled(gateway: Gateway, message_id: str, state: str, timeout: float = 10.0
                  ) -> StatusRecord:
    """Wait until the message's record is in `state`; the record."""
    record: StatusRecord | None = None

    async def reached() -> bool:
        nonlocal record
        record = await gateway.runtime.status.get(message_id)
        return record is not None and record.state.value == state

    try:
        await wait_until(reached, timeout, f"{message_id} to be {state}")
    except AssertionError:
        raise AssertionError(f"{message_id} not {state}: {record}") from None
    assert record is not None
    return record


async def stored_on(gateway: Gateway, subject: str) -> int:
    """How many events the stream holds on `subject` (wildcards allowed)."""
    runtime = gateway.runtime
    info = await runtime.js.stream_info(runtime.stream, subjects_filter=subject)
    return sum((info.state.subjects or {}).values())


async def last_status(gateway: Gateway, message_id: str) -> dict[str, Any]:
    """The latest `sms.status.<id>` event as JSON."""
    msg = await gateway.runtime.js.get_last_msg(gateway.runtime.stream,
                                                f"sms.status.{message_id}")
    assert msg.data is not None
    data: dict[str, Any] = json.loads(msg.data)
    return data
