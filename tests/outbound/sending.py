"""Sending through the API in outbound tests: the simulator account, our number, and reads
of statuses, dead letters and metrics."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import ClientSession
from nats.errors import TimeoutError as NatsTimeout
from prometheus_client import REGISTRY

from pbxsms.core.model.events import DeadLetter
from tests.support.gateway import Gateway

USER, KEY = "pbxsms-test", "4F1E2D3C-5B6A-4789-9ABC-DEF012345678"
TOKEN = "api-t0ken"
OURS = "+61481070001"  # our dedicated number, owned by extension 101
NUMBERS = f"""
[[numbers]]
number = "{OURS}"
provider = "clicksend"
extension = "101"
"""
# Fast retries, so fault scenarios settle in about a second.
BUS = """
[bus]
backoff_initial = "50ms"
backoff_max = "500ms"
"""


def recipient(n: int) -> str:
    """A distinct, possible Australian mobile number."""
    return f"+614{n:08d}"


async def post_message(gateway: Gateway, payload: dict[str, Any], token: str = TOKEN
                       ) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    async with ClientSession(headers=headers) as http, \
            http.post(f"{gateway.url}/api/v1/messages", json=payload) as response:
        return response.status, await response.json()


async def send_via_api(gateway: Gateway, body: str = "hello", to: str | None = None) -> str:
    """Send through the API from our number; the message id."""
    status, answer = await post_message(gateway, {"from": OURS, "to": to or recipient(1),
                                                  "body": body})
    assert status == 202, answer
    return str(answer["id"])


async def drained(gateway: Gateway, consumer: str) -> bool:
    """True when the durable consumer has nothing pending or unacknowledged."""
    info = await gateway.runtime.js.consumer_info(gateway.runtime.stream, consumer)
    return bool(info.num_pending == 0 and info.num_ack_pending == 0)


async def dead_letters(gateway: Gateway, count: int, timeout: float = 10.0
                       ) -> list[DeadLetter]:
    """The first `count` dead letters of the outbound consumer (fails at the deadline)."""
    sub = await gateway.runtime.js.subscribe("sms.dead.outbound", ordered_consumer=True)
    letters: list[DeadLetter] = []
    deadline = time.monotonic() + timeout
    try:
        while len(letters) < count:
            try:
                msg = await sub.next_msg(timeout=max(deadline - time.monotonic(), 0.01))
            except NatsTimeout:
                raise AssertionError(f"{len(letters)} of {count} dead letters") from None
            letters.append(DeadLetter.model_validate_json(msg.data))
    finally:
        await sub.unsubscribe()
    return letters


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0
