"""Hostile requests at the HTTP layer: encoded bodies, slow and idle connections, bytes
that are not text. None is answered 5xx, none holds the gateway."""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import resource
import time
import zlib
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import ClientSession, ClientTimeout

from tests.support.gateway import Gateway

StartGateway = Callable[..., Awaitable[Gateway]]

HOOK_TOKEN = "cs-hook-token"
API_TOKEN = "api-token"
OURS = "+61477485926"
NUMBERS = ('[[numbers]]\nnumber = "+61477485926"\nprovider = "clicksend"\n'
           'extension = "201"\n')
IDLE, CAP = 260, 100
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
INBOUND = "from=%2B61429912603&to=%2B61477485926&body=hello&message_id=HOSTILE-1"


async def start(start_gateway: StartGateway) -> Gateway:
    return await start_gateway(toml=NUMBERS, env={"CLICKSEND_WEBHOOK_TOKEN": HOOK_TOKEN,
                                                  "PBXSMS_API_TOKEN": API_TOKEN})


async def stored(gw: Gateway) -> int:
    info = await gw.runtime.js.stream_info(gw.runtime.stream)
    return int(info.state.messages)


async def test_encoded_bodies_are_refused_on_every_route_and_never_inflated(
        start_gateway: StartGateway) -> None:
    gw = await start(start_gateway)
    before = await stored(gw)
    sms = f"{gw.url}/webhook/clicksend/sms?token={HOOK_TOKEN}"
    # Not gzip at all: a server that tried to inflate it would answer 400, not 415.
    garbage = b"\x1f\x8b not really gzip" * 10
    cases = [
        ("POST", sms, gzip.compress(INBOUND.encode()), "gzip", FORM),
        ("POST", sms, zlib.compress(INBOUND.encode()), "deflate", FORM),
        ("POST", sms, garbage, "gzip", FORM),
        ("POST", sms, garbage, "br", FORM),
        ("POST", f"{gw.url}/api/v1/messages", garbage, "gzip",
         {"Content-Type": "application/json", "Authorization": f"Bearer {API_TOKEN}"}),
        ("POST", f"{gw.url}/webhook/ringotel", garbage, "gzip", FORM),
        ("GET", f"{gw.url}/healthz", garbage, "gzip", {}),
        ("POST", f"{gw.url}/no/such/route", garbage, "gzip", {}),
        # A bomb: 16 MiB of zeros in 16 KiB. Refused before anything reads it.
        ("POST", sms, gzip.compress(bytes(16 << 20)), "gzip", FORM),
    ]
    async with ClientSession(auto_decompress=False) as http:
        for method, url, body, encoding, headers in cases:
            async with http.request(method, url, data=body,
                                    headers={**headers, "Content-Encoding": encoding}) as resp:
                assert resp.status == 415, (url, encoding, resp.status, await resp.text())
                assert "Content-Encoding" in (await resp.json())["error"]
        assert await stored(gw) == before
        # The same text unencoded is taken: the refusal was about the encoding only.
        async with http.post(sms, data=INBOUND, headers=FORM) as resp:
            assert resp.status == 200
    assert await stored(gw) > before


async def closed_within(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        drip: bytes, limit: float) -> tuple[float, bytes]:
    """Send `drip` a byte every 0.1 s until the server closes the connection; how long
    it took and what it answered. Fails after `limit` seconds (a bounded loop)."""
    started = time.monotonic()
    answer = b""
    for index in range(int(limit / 0.1)):
        try:
            writer.write(drip[index % len(drip):index % len(drip) + 1])
            await writer.drain()
            chunk = await asyncio.wait_for(reader.read(4096), 0.1)
        except TimeoutError:
            continue
        except ConnectionError:
            return time.monotonic() - started, answer
        if not chunk:
            return time.monotonic() - started, answer
        answer += chunk
    raise AssertionError(f"the connection was still open after {limit} s")


async def test_slow_headers_and_slow_bodies_are_cut_off_at_their_deadlines(
        start_gateway: StartGateway) -> None:
    gw = await start_gateway(toml=NUMBERS + '\n[http]\nheader_timeout = "1s"\n'
                                            'body_timeout = "1s"\n',
                             env={"CLICKSEND_WEBHOOK_TOKEN": HOOK_TOKEN})
    port = gw.server.port
    assert port is not None
    # Headers a byte at a time: closed once the header deadline passes.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST /webhook/clicksend/sms?token={HOOK_TOKEN} HTTP/1.1\r\n".encode())
    took, _ = await closed_within(reader, writer, b"X-Slow: " + b"a" * 200, limit=8.0)
    assert took < 2.5, took
    writer.close()
    # Nothing at all after connecting: the same deadline.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    took = await idle_until_closed(reader, limit=8.0)
    assert took < 2.5, took
    writer.close()
    # Complete headers, then the body a byte at a time: 408 at the body deadline.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST /webhook/clicksend/sms?token={HOOK_TOKEN} HTTP/1.1\r\n"
                 f"Host: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                 f"Content-Length: {len(INBOUND)}\r\n\r\n".encode())
    took, answer = await closed_within(reader, writer, INBOUND.encode()[:-1], limit=8.0)
    assert took < 2.5, took
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    writer.close()


async def idle_until_closed(reader: asyncio.StreamReader, limit: float) -> float:
    started = time.monotonic()
    try:
        assert await asyncio.wait_for(reader.read(4096), limit) == b""
    except TimeoutError:
        raise AssertionError(f"an idle connection was still open after {limit} s") from None
    return time.monotonic() - started


async def test_a_webhook_gets_through_while_hundreds_of_idle_connections_are_open(
        start_gateway: StartGateway) -> None:
    gw = await start_gateway(toml=NUMBERS + f'\n[http]\nmax_connections = {CAP}\n',
                             env={"CLICKSEND_WEBHOOK_TOKEN": HOOK_TOKEN})
    port = gw.server.port
    assert port is not None
    # As on a small server: descriptors for what is open now, the idle clients' side
    # (they live in this process too), the cap and a margin; 260 idle connections
    # without a cap would need 260 more on the server's side and starve it.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = len(os.listdir("/proc/self/fd")) + IDLE + CAP + 60
    assert limit <= min(soft, hard if hard != resource.RLIM_INFINITY else soft), \
        f"too few file descriptors ({soft}) for this test"
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    idle: list[asyncio.StreamWriter] = []
    try:
        for _ in range(IDLE):
            idle.append((await asyncio.open_connection("127.0.0.1", port))[1])
        started = time.monotonic()
        async with ClientSession(timeout=ClientTimeout(total=5)) as http, http.post(
                f"{gw.url}/webhook/clicksend/sms?token={HOOK_TOKEN}", data=INBOUND,
                headers=FORM) as resp:
            assert resp.status == 200, await resp.text()
        assert time.monotonic() - started < 2.0
    finally:
        for writer in idle:
            writer.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def raw_request(port: int, head: bytes, body: bytes = b"") -> int:
    """Send one request as raw bytes (no client escapes them); the answer's status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + b"\r\nHost: x\r\nConnection: close\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    return int(answer.split(b" ", 2)[1])


async def test_bytes_that_are_not_text_are_refused_never_a_500(
        start_gateway: StartGateway, caplog: pytest.LogCaptureFixture) -> None:
    gw = await start(start_gateway)
    port = gw.server.port
    assert port is not None
    send = {"to": "+61400000001", "from": OURS, "body": "hi \\ud800"}
    json_send = (b'{"to": "+61400000001", "from": "' + OURS.encode()
                 + b'", "body": "hi \\ud800"}')
    assert send  # the JSON text above, with its escaped lone surrogate
    cases = [
        (b"GET /api/v1/messages/x HTTP/1.1\r\nAuthorization: Bearer t\xc3\xb6ken", b"", 401),
        (b"GET /api/v1/messages/x HTTP/1.1\r\nAuthorization: Bearer \xff\xfe", b"", 401),
        (b"POST /api/v1/messages HTTP/1.1\r\nAuthorization: Bearer \xe2\x82\xac"
         b"\r\nContent-Type: application/json", json_send, 401),
        # Raw bytes in the request line: aiohttp's parser refuses them before any route.
        (b"GET /webhook/clicksend/sms?token=\xff&" + INBOUND.encode() + b" HTTP/1.1",
         b"", 400),
        (b"GET /webhook/clicksend/sms?token=%ff%fe&" + INBOUND.encode() + b" HTTP/1.1",
         b"", 401),
        (b"GET /webhook/clicksend/sms?token=" + HOOK_TOKEN.encode() + b"&from=\xff HTTP/1.1",
         b"", 400),
        (b"POST /webhook/ringotel?token=%ff HTTP/1.1", b"", 401),
        (b"GET /healthz?x=\xff HTTP/1.1", b"", 400),
        (b"GET /healthz?x=%ff HTTP/1.1", b"", 200),
        (b"POST /api/v1/messages HTTP/1.1\r\nAuthorization: Bearer " + API_TOKEN.encode()
         + b"\r\nContent-Type: application/json", json_send, 422),
    ]
    with caplog.at_level(logging.INFO):
        for head, body, expected in cases:
            assert await raw_request(port, head, body) == expected, head
    # Malformed requests from the internet are one line each, never a traceback.
    assert not [record for record in caplog.records if record.exc_info], caplog.text


async def test_the_api_source_cannot_forge_log_lines(start_gateway: StartGateway,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    gw = await start(start_gateway)
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    forged = "crm\n2026-01-01 00:00:00,000 WARNING pbxsms.outbound: forged line"
    async with ClientSession() as http:
        for source in (forged, "crm app", "x" * 65, "crm\x1b[31m", "é"):
            async with http.post(f"{gw.url}/api/v1/messages", headers=auth, json={
                    "to": "+61400000001", "from": OURS, "body": "hi",
                    "source": source}) as resp:
                assert (resp.status, (await resp.json())["field"]) == (422, "source"), source
        with caplog.at_level(logging.INFO, logger="pbxsms.outbound"):
            async with http.post(f"{gw.url}/api/v1/messages", headers=auth, json={
                    "to": "+61400000001", "from": OURS, "body": "hi",
                    "source": "crm.v2_x-1"}) as resp:
                assert resp.status == 202
    assert "forged line" not in caplog.text
    assert "'crm.v2_x-1'" in caplog.text  # logged quoted
