"""The console's thread page with 100,000 messages stored: how fast it answers.

100,000 inbound messages are stored on the bus (one busy conversation of 2,000, the rest
spread over 1,000 customers) and folded by the gateway's own `console-index` consumer;
then one signed-in client asks for the busy conversation's page again and again, one
request at a time, and the latencies are read.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import nats
from aiohttp import ClientSession, CookieJar

from bench.load import OURS, percentile
from bench.procs import Gateway, Sinks
from pbxsms.bus.kv import ensure_kv
from pbxsms.core.inbound.routing import inbound_id
from pbxsms.core.model.events import InboundMessage, Route
from pbxsms.plugins.console.index import MESSAGES_BUCKET, THREADS_BUCKET, conversation_key
from pbxsms.plugins.console.users import USERS_BUCKET, new_user

SECRET = "bench-console-secret-0123456789"
PASSWORD = "bench password 1"
HOT = "+61499000000"  # the busy conversation's customer
HOT_MESSAGES = 2_000
CUSTOMERS = 1_000


def thread_page(workdir: Path, sinks: Sinks, messages: int = 100_000,
                requests: int = 2_000) -> dict[str, Any]:
    gateway = Gateway(workdir / "console", sinks, ["clicksend", "console"],
                      extra_env={"PBXSMS_CONSOLE_SECRET": SECRET})
    try:
        result = asyncio.run(_measure(gateway, messages, requests))
        result["peak_rss_mb"] = round(gateway.sample_rss(), 1)
        return result
    finally:
        gateway.close()


async def _measure(gateway: Gateway, messages: int, requests: int) -> dict[str, Any]:
    nc = await nats.connect(gateway.nats_url)
    js = nc.jetstream(timeout=30)
    try:
        users = await ensure_kv(js, USERS_BUCKET)
        user = new_user("bench", PASSWORD)
        await users.put(user.name, user.model_dump_json().encode())
        route = Route(number=OURS, provider="clicksend", extension="201")
        began = time.monotonic()
        for start in range(0, messages, 1000):
            await asyncio.gather(*(
                _publish(js, n, route) for n in range(start, min(start + 1000, messages))))
        stored = time.monotonic() - began
        conv = conversation_key(OURS, HOT)
        threads = await ensure_kv(js, THREADS_BUCKET)
        # Each message is one message key and one id key in the messages bucket.
        deadline = time.monotonic() + 900
        while True:
            info = await js.stream_info(f"KV_{MESSAGES_BUCKET}")
            if info.state.messages >= 2 * messages:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"indexed {info.state.messages // 2} of {messages}")
            await asyncio.sleep(1.0)
        indexed = time.monotonic() - began
        entry = await threads.get(f"t.{conv}")
        hot = _hot_count(messages)
        if entry.value is None or f'"count":{hot},'.encode() not in entry.value:
            raise RuntimeError(f"the busy conversation does not hold {hot} messages")
    finally:
        await nc.close()
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
        async with http.post(f"{gateway.url}/console/login",
                             data={"name": "bench", "password": PASSWORD},
                             headers={"Origin": gateway.url}) as response:
            if not str(response.url).endswith("/console/"):
                raise RuntimeError(f"sign-in failed: {response.status}")
        url = f"{gateway.url}/console/t/{conv}"
        latencies = []
        for n in range(requests + 100):
            started = time.perf_counter()
            async with http.get(url) as response:
                body = await response.read()
                if response.status != 200 or b'class="msg inbound' not in body:
                    raise RuntimeError(f"thread page answered {response.status}")
            if n >= 100:  # the first hundred warm the caches
                latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    return {"messages": messages, "thread_messages": _hot_count(messages), "requests": requests,
            "page_messages": 50, "stored_s": round(stored, 1),
            "indexed_per_s": round(messages / indexed), "bytes": len(body),
            "p50_ms": round(percentile(latencies, 50), 2),
            "p99_ms": round(percentile(latencies, 99), 2),
            "max_ms": round(latencies[-1], 2)}


def _hot_count(messages: int) -> int:
    return min(HOT_MESSAGES, (messages + 49) // 50)


async def _publish(js: Any, n: int, route: Route) -> None:
    """Message `n`: every 50th goes to the busy conversation, up to HOT_MESSAGES."""
    hot = n % 50 == 0 and n // 50 < HOT_MESSAGES
    customer = HOT if hot else f"+614990{n % CUSTOMERS + 1:05d}"
    key = f"bench-console:{n}"
    message = InboundMessage.model_validate({
        "id": inbound_id(key), "provider": "clicksend", "from": customer, "to": OURS,
        "body": f"Can I book a table for {n % 8 + 1} at {n % 12 + 1}pm? (message {n})",
        "route": route})
    await js.publish("sms.inbound.clicksend", message.to_json(),
                     headers={"Nats-Msg-Id": key})
