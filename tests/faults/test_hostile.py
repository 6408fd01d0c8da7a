"""Hostile input and security, against `pbxsms serve` as a process.

Generated requests across every public route (wrong methods and content types, oversized
and malformed bodies, gzip and other encoded bodies, missing, wrong and non-ASCII
credentials) while slow clients trickle their headers: never a 5xx, the process stays up,
the slow connections are closed at the header deadline, nothing is stored from them, and
its memory stays flat. Refusals of wrong credentials
publish nothing. The log of the whole run holds no configured secret and no body.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import time
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest

from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.faults.support import (
    FULL,
    SECRETS,
    ClickSendPoster,
    GatewayProc,
    Result,
    Sinks,
    Webhook,
    add_result,
    bodies,
    fault_env,
    gateway_toml,
    inbound_payload,
)
from tests.helpers import wait_until
from tests.support.delivery import HOOK_TOKEN
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.faults

REQUESTS = 10_000 if FULL else 2_000
SLOW_CLIENTS = 100 if FULL else 30
HEADER_TIMEOUT = 2.0
CS_TOKEN = SECRETS["CLICKSEND_WEBHOOK_TOKEN"]
API_TOKEN = SECRETS["PBXSMS_API_TOKEN"]

ROUTES = [
    ("POST", "/webhook/clicksend/sms"), ("GET", "/webhook/clicksend/sms"),
    ("POST", "/webhook/clicksend/dlr"), ("POST", "/webhook/ringotel"),
    ("POST", "/api/v1/messages"), ("GET", "/api/v1/messages"),
    ("GET", "/api/v1/messages/{id}"), ("GET", "/api/v1/numbers"),
    ("PUT", "/api/v1/numbers"), ("GET", "/api/v1/numbers/{n}"),
    ("PUT", "/api/v1/numbers/{n}"), ("DELETE", "/api/v1/numbers/{n}"),
    ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"),
]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]
TYPES = ["application/json", "application/x-www-form-urlencoded", "multipart/form-data",
         "multipart/form-data; boundary=xyz", "text/plain", "application/xml",
         "application/json; charset=latin-9", "application/x-www-form-urlencoded; charset=nope",
         "", "*/*", "application/json\u00e9"]


def malformed(rng: random.Random) -> bytes:
    """A body no route may store: broken, oversized, of the wrong shape, or garbage."""
    sample = json.dumps(inbound_payload("hostile", "HOSTILE-1"))
    choices: list[Any] = [
        lambda: rng.randbytes(rng.randint(0, 2048)),
        lambda: b"x" * rng.choice([65 * 1024, 70_000, 200_000]),  # over the 64 KiB limit
        lambda: sample[: rng.randint(0, len(sample) - 1)].encode(),  # truncated JSON
        lambda: (b"[" * 5000) + (b"]" * 5000),  # deep nesting
        lambda: json.dumps(rng.choice([[], 1, "s", None, True, 1e308])).encode(),
        lambda: json.dumps({"to": "+6141\u0000", "body": rng.randbytes(8).hex(),
                            "from": "x" * 300, "message_id": "a b\r\nc"}).encode(),
        lambda: json.dumps({**inbound_payload("hostile", "H-2"), "to": "not a number",
                            "from": {"nested": [1, 2]}}).encode(),
        lambda: b"from=%ZZ&to=%&body=\xff\xfe&message_id=" + b"%00" * 100,
        lambda: b"--xyz\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\n+61\r\n--x",
        lambda: "\ud800".encode("utf-8", "surrogatepass"),
        lambda: b"",
        lambda: json.dumps({"number": "+6199" + "9" * 40, "extension": ["201"],
                            "provider": 5}).encode(),
        lambda: json.dumps({"extension": "201", "to": "", "body": ""}).encode(),
        lambda: json.dumps({"orgid": None, "messageid": 7, "from": "", "to": "201",
                            "content": {"x": 1}}).encode(),
    ]
    body: bytes = rng.choice(choices)()
    return body


def hostile_request(rng: random.Random) -> tuple[str, str, dict[str, str], bytes]:
    method, path = rng.choice(ROUTES)
    if rng.random() < 0.2:
        method = rng.choice(METHODS)
    path = path.replace("{id}", rng.choice(["x", "../../etc", "%00", "a" * 300, "🙂"]))
    path = path.replace("{n}", rng.choice(["+61499999999", "abc", "%2B61", "0" * 100]))
    if rng.random() < 0.05:
        path = rng.choice(["/", "/webhook", "/api/v1", "/webhook/clicksend/sms/../dlr",
                           "/" + "a" * 4000, "/webhook/%ff"])
    query: dict[str, str] = {}
    headers: dict[str, str] = {}
    credential = rng.random()
    if path.startswith("/webhook/clicksend"):
        if credential < 0.5:
            query["token"] = CS_TOKEN  # right token, hostile body
        elif credential < 0.8:
            query["token"] = rng.choice(["", "wrong", CS_TOKEN[:-1], CS_TOKEN + "x",
                                         "t\u00f6k\u20ac", CS_TOKEN + "\u00ff"])
    elif path.startswith("/webhook/ringotel"):
        if credential < 0.5:
            query["token"] = HOOK_TOKEN
        elif credential < 0.8:
            query["token"] = "wrong"
    elif path.startswith("/api/"):
        if credential < 0.5:
            headers["Authorization"] = f"Bearer {API_TOKEN}"
        elif credential < 0.8:
            headers["Authorization"] = rng.choice(
                ["Bearer", "Bearer wrong", f"Basic {API_TOKEN}", f"bearer  {API_TOKEN}x",
                 "Bearer " + "x" * 5000, "Bearer t\u00f6ken\u20ac", f"Bearer {API_TOKEN}\u00e9"])
    if rng.random() < 0.3:
        query.update({"to": "+61411111111", "from": "x\x00", "message_id": "%%%"})
    if query:
        path += "?" + "&".join(f"{key}={value}" for key, value in query.items())
    kind = rng.choice(TYPES)
    if kind:
        headers["Content-Type"] = kind
    body = malformed(rng) if method not in ("GET", "HEAD") or rng.random() < 0.2 else b""
    if rng.random() < 0.1:
        # Encoded bodies: refused (415) before anything reads them, never inflated; a few
        # are bombs (16 MiB of zeros in 16 KiB).
        headers["Content-Encoding"] = rng.choice(["gzip", "deflate", "br", "gzip, gzip"])
        body = gzip.compress(body if rng.random() < 0.8 else bytes(16 << 20))
    return method, path, headers, body


async def slow_client(port: int, rng: random.Random) -> float:
    """Connect and trickle a request's headers, a byte every 0.2 s: how long until the
    gateway closed the connection (bounded: fails after the deadline and a margin)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        writer.write(f"POST /webhook/clicksend/sms?token={CS_TOKEN} HTTP/1.1\r\n".encode())
        header = b"X-Slow: " + bytes(rng.choice(b"abcdef") for _ in range(200))
        for byte in range(int((HEADER_TIMEOUT + 10) / 0.2)):
            try:
                writer.write(header[byte % len(header):byte % len(header) + 1])
                await writer.drain()
                if await asyncio.wait_for(reader.read(1024), 0.2) == b"":
                    return time.monotonic() - started
            except TimeoutError:
                continue
            except ConnectionError:
                return time.monotonic() - started
        raise AssertionError(f"a slow client was still connected after {HEADER_TIMEOUT + 10} s")
    finally:
        writer.close()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def stored(nats_url: str) -> dict[str, int]:
    """Messages in the event stream and in the numbers bucket."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        return {name: (await js.stream_info(name)).state.messages
                for name in ("SMS", "KV_sms_numbers")}
    finally:
        await nc.close()


async def test_hostile_requests_never_5xx_store_nothing_and_memory_stays_flat(
    tmp_path: Path, app: MobileAppSimulator, smtp: SmtpServer
) -> None:
    toml = gateway_toml() + f'\n[http]\nheader_timeout = "{HEADER_TIMEOUT:g}s"\n'
    gateway = GatewayProc(tmp_path / "gw", toml, fault_env(app, smtp))
    await asyncio.to_thread(gateway.start)
    assert gateway.proc is not None
    pid = gateway.proc.popen.pid
    try:
        before = await stored(gateway.embedded_nats_url)
        rng = random.Random(7)  # the same requests every run
        statuses: dict[int, int] = {}
        rss: list[int] = []
        connector = aiohttp.TCPConnector(limit=16)
        slow = [asyncio.ensure_future(slow_client(gateway.http_port, rng))
                for _ in range(SLOW_CLIENTS)]
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one() -> None:
                method, path, headers, body = hostile_request(rng)
                try:
                    async with session.request(
                            method, gateway.url + path, data=body, headers=headers,
                            skip_auto_headers=["Content-Type"],
                            timeout=aiohttp.ClientTimeout(total=15)) as response:
                        await response.read()
                        status = response.status
                except aiohttp.ClientError:
                    status = 0  # the server closed on us (e.g. an oversized head): no 5xx
                statuses[status] = statuses.get(status, 0) + 1
                assert status < 500, f"{method} {path[:80]} {headers} → {status}"

            for start in range(0, REQUESTS, 100):
                await asyncio.gather(*(one() for _ in range(min(100, REQUESTS - start))))
                if start == REQUESTS // 5 // 100 * 100:
                    rss.append(rss_kib(pid))  # warmed up
                assert gateway.proc.popen.poll() is None, "the gateway died"
            rss.append(rss_kib(pid))
        held = await asyncio.gather(*slow)
        assert max(held) < HEADER_TIMEOUT + 2, f"slow clients held for up to {max(held):.1f} s"
        assert sum(statuses.values()) == REQUESTS
        assert await stored(gateway.embedded_nats_url) == before, "invalid input stored something"
        growth = rss[-1] - rss[0]
        print(f"statuses {sorted(statuses.items())}, RSS {rss[0]} → {rss[-1]} KiB")
        assert growth < 20 * 1024, f"RSS grew by {growth} KiB"
        add_result(Result("hostile", f"{REQUESTS} generated requests across every route "
                      f"(RSS {rss[0] // 1024} → {rss[-1] // 1024} MiB after warm-up, "
                      f"answers {', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))}; "
                      f"{SLOW_CLIENTS} slow clients closed within {max(held):.1f} s)",
                      sent=REQUESTS, delivered=0, duplicated=0, lost=0,
                      notes="0 stored, 0 answered 5xx."))
        gateway.assert_log_clean([])
    finally:
        await asyncio.to_thread(gateway.stop)


async def test_wrong_credentials_are_refused_and_publish_nothing(
    tmp_path: Path, app: MobileAppSimulator, smtp: SmtpServer
) -> None:
    gateway = GatewayProc(tmp_path / "gw", gateway_toml(), fault_env(app, smtp))
    await asyncio.to_thread(gateway.start)
    try:
        before = await stored(gateway.embedded_nats_url)
        payload = inbound_payload("a message nobody may store", "SEC-1")
        sms = f"{gateway.url}/webhook/clicksend/sms"
        send = {"extension": "201", "to": "+61422222222", "body": "not from us"}
        number = {"number": "+61433333333", "provider": "clicksend", "extension": "666"}
        attempts: list[tuple[str, str, dict[str, Any], dict[str, str], int]] = [
            ("POST", f"{sms}?token={CS_TOKEN}", {**payload, "subaccount_id": 1}, {}, 403),
            ("POST", f"{sms}?token={CS_TOKEN}", {k: v for k, v in payload.items()
                                                  if k != "subaccount_id"}, {}, 403),
            ("POST", sms, payload, {}, 401),
            ("POST", f"{sms}?token=wrong", payload, {}, 401),
            ("POST", f"{gateway.url}/webhook/clicksend/dlr?token=nope",
             {"message_id": "X", "status_code": "201"}, {}, 401),
            ("POST", f"{gateway.url}/webhook/ringotel?token=wrong",
             {"method": "message", "params": {}}, {}, 401),
            ("POST", f"{gateway.url}/api/v1/messages", send, {}, 401),
            ("POST", f"{gateway.url}/api/v1/messages", send,
             {"Authorization": "Bearer wrong"}, 401),
            ("POST", f"{gateway.url}/api/v1/messages", send,
             {"Authorization": f"Basic {API_TOKEN}"}, 401),
            ("PUT", f"{gateway.url}/api/v1/numbers/%2B61433333333", number, {}, 401),
            ("GET", f"{gateway.url}/api/v1/messages", {}, {}, 401),
        ]
        async with aiohttp.ClientSession() as session:
            for method, url, body, headers, expected in attempts:
                async with session.request(method, url, json=body or None,
                                           headers=headers) as response:
                    assert response.status == expected, (method, url, await response.text())
        assert await stored(gateway.embedded_nats_url) == before, \
            "a refused request stored something"
        # The same webhook with the right credentials is stored: the count above could move.
        ours = bodies("security", 1)
        await ClickSendPoster(gateway.url).deliver([Webhook(ours[0], "SEC-1")])
        assert (await stored(gateway.embedded_nats_url))["SMS"] > before["SMS"]
        await wait_until(lambda: Sinks(app, smtp).all_delivered(ours), 30,
                         "the accepted one delivered")
        gateway.assert_log_clean([payload["body"], send["body"], *ours])
        add_result(Result("security", f"{len(attempts)} requests with a wrong subaccount_id, "
                      "missing or wrong tokens, no Bearer: all refused (401/403), nothing "
                      "stored; then the right one is stored and delivered; no secret or body "
                      "in the log", sent=1, delivered=1, duplicated=0, lost=0))
    finally:
        await asyncio.to_thread(gateway.stop)


async def test_a_replay_after_the_duplicate_window_is_not_delivered_again(
    tmp_path: Path, app: MobileAppSimulator, smtp: SmtpServer
) -> None:
    window = 2.0
    gateway = GatewayProc(tmp_path / "gw", gateway_toml(f'duplicate_window = "{window}s"'),
                          fault_env(app, smtp))
    await asyncio.to_thread(gateway.start)
    try:
        sent = bodies("replay", 20)
        hooks = [Webhook(body) for body in sent]
        await ClickSendPoster(gateway.url).deliver(hooks)
        sinks = Sinks(app, smtp)
        await wait_until(lambda: sinks.all_delivered(sent), 60, "first deliveries")
        first = (await stored(gateway.embedded_nats_url))["SMS"]
        # After the window JetStream no longer knows the Nats-Msg-Id: the replay is a new
        # stream entry with the same (derived) id, and the delivery ledger stops it.
        loop = asyncio.get_running_loop()
        until = loop.time() + window + 1.0
        await wait_until(lambda: loop.time() > until, window + 5, "the window to pass")
        replays = [Webhook(hook.body, hook.message_id) for hook in hooks]
        await ClickSendPoster(gateway.url).deliver(replays)
        assert (await stored(gateway.embedded_nats_url))["SMS"] > first, \
            "the replay was stored again"
        await _consumers_idle(gateway.embedded_nats_url, "deliver-mobileapp", "deliver-email")
        result = add_result(measure_replay(sinks, sent))
        assert (result.lost, result.duplicated) == (0, 0)
        gateway.assert_log_clean(sent)
    finally:
        await asyncio.to_thread(gateway.stop)


def measure_replay(sinks: Sinks, sent: list[str]) -> Result:
    from tests.faults.support import measure

    return measure("replay", "each webhook replayed after the duplicate window "
                   "(shortened to 2 s)", sinks, sent)


async def _consumers_idle(nats_url: str, *names: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()

        async def idle() -> bool:
            for name in names:
                info = await js.consumer_info("SMS", name)
                if info.num_pending or info.num_ack_pending:
                    return False
            return True

        await wait_until(idle, 30, "the delivery consumers idle")
    finally:
        await nc.close()
