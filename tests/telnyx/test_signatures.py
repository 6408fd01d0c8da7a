"""Telnyx webhooks are taken only when Ed25519-signed by the account's key over
`timestamp|raw body`, fresh, and not seen before; anything else is refused before parsing
and stores nothing."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pbxsms.sim.telnyx import SIGNATURE_HEADER, TIMESTAMP_HEADER, TelnyxSimulator
from tests.support.gateway import Gateway
from tests.support.telnyx import CUSTOMER, OURS, stored_on, telnyx_env, toml

StartGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def gateway(start_gateway: StartGateway, telnyx: TelnyxSimulator) -> Gateway:
    return await start_gateway(toml=toml(), env=telnyx_env(telnyx))


def inbound(telnyx: TelnyxSimulator, text: str = "hi") -> bytes:
    body = telnyx.envelope("message.received", telnyx.inbound_payload(CUSTOMER, OURS, text))
    return json.dumps(body).encode()


async def assert_nothing_stored(gateway: Gateway) -> None:
    assert await stored_on(gateway, "sms.inbound.>") == 0
    assert await stored_on(gateway, "sms.status.>") == 0


async def test_a_signed_fresh_webhook_is_stored(gateway: Gateway,
                                                telnyx: TelnyxSimulator) -> None:
    result = await telnyx.push(f"{gateway.url}/webhook/telnyx", inbound(telnyx))
    assert result.status == 200, result.body
    assert await stored_on(gateway, "sms.inbound.telnyx") == 1


async def test_a_signature_by_another_key_is_refused(gateway: Gateway,
                                                     telnyx: TelnyxSimulator) -> None:
    raw, stamp = inbound(telnyx), str(int(time.time()))
    forged = base64.b64encode(Ed25519PrivateKey.generate().sign(
        stamp.encode() + b"|" + raw)).decode()
    result = await telnyx.push(f"{gateway.url}/webhook/telnyx", raw, signature=forged,
                               timestamp=int(stamp))
    assert result.status == 401 and "does not match" in result.body
    await assert_nothing_stored(gateway)


async def test_a_tampered_body_is_refused(gateway: Gateway, telnyx: TelnyxSimulator) -> None:
    raw, stamp = inbound(telnyx, "pay 10"), str(int(time.time()))
    headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: stamp,
               SIGNATURE_HEADER: telnyx.sign(stamp, raw)}
    tampered = raw.replace(b"pay 10", b"pay 99")
    result = await telnyx.push_raw(f"{gateway.url}/webhook/telnyx", tampered, headers)
    assert result.status == 401
    # The timestamp is signed too: moving it breaks the signature.
    moved = {**headers, TIMESTAMP_HEADER: str(int(stamp) + 1)}
    assert (await telnyx.push_raw(f"{gateway.url}/webhook/telnyx", raw, moved)).status == 401
    await assert_nothing_stored(gateway)


async def test_a_stale_webhook_is_refused(gateway: Gateway, telnyx: TelnyxSimulator) -> None:
    # Validly signed, but 301 s old (Telnyx's window is ±300 s), and as far in the future.
    for skew in (-301, 301):
        result = await telnyx.push(f"{gateway.url}/webhook/telnyx", inbound(telnyx),
                                   timestamp=int(time.time()) + skew)
        assert result.status == 401 and "window" in result.body
    await assert_nothing_stored(gateway)


async def test_a_replayed_webhook_is_refused(gateway: Gateway,
                                             telnyx: TelnyxSimulator) -> None:
    first = await telnyx.push(f"{gateway.url}/webhook/telnyx", inbound(telnyx))
    assert first.status == 200
    stored = await stored_on(gateway, ">")
    replay = await telnyx.push_raw(f"{gateway.url}/webhook/telnyx", first.raw, first.headers)
    assert replay.status == 409 and "replayed" in replay.body
    assert await stored_on(gateway, ">") == stored


async def test_missing_headers_and_an_unset_key_are_refused(
        start_gateway: StartGateway, telnyx: TelnyxSimulator) -> None:
    gateway = await start_gateway(toml=toml(), env={**telnyx_env(telnyx),
                                                    "TELNYX_PUBLIC_KEY": ""})
    raw = inbound(telnyx)
    unsigned = await telnyx.push_raw(f"{gateway.url}/webhook/telnyx", raw,
                                     {"Content-Type": "application/json"})
    assert unsigned.status == 401
    signed = await telnyx.push(f"{gateway.url}/webhook/telnyx", raw)
    assert signed.status == 401 and "TELNYX_PUBLIC_KEY" in signed.body
    await assert_nothing_stored(gateway)


async def test_a_repeated_event_with_a_new_signature_is_one_message(
        gateway: Gateway, telnyx: TelnyxSimulator) -> None:
    # Telnyx's own retry is signed again: taken, and deduplicated on the message id.
    raw = inbound(telnyx)
    assert (await telnyx.push(f"{gateway.url}/webhook/telnyx", raw)).status == 200
    again = await telnyx.push(f"{gateway.url}/webhook/telnyx", raw,
                              timestamp=int(time.time()) - 5)
    assert again.status == 200 and '"duplicate"' in again.body
    assert await stored_on(gateway, "sms.inbound.telnyx") == 1
