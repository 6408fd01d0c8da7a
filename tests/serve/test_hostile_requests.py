"""Hostile requests at the HTTP layer: encoded bodies, slow and idle connections, bytes
that are not text. None is answered 5xx, none holds the gateway."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Awaitable, Callable

from aiohttp import ClientSession

from tests.support.gateway import Gateway

StartGateway = Callable[..., Awaitable[Gateway]]

HOOK_TOKEN = "cs-hook-token"
API_TOKEN = "api-token"
OURS = "+61477485926"
NUMBERS = ('[[numbers]]\nnumber = "+61477485926"\nprovider = "clicksend"\n'
           'extension = "201"\n')
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
