"""Bandwidth's callback route: inbound messages and receipts on one URL, Basic auth first.

Bandwidth has no body signature: the Messaging application's callback credentials
(`BANDWIDTH_CALLBACK_USERNAME`/`_PASSWORD`) come as HTTP Basic auth, compared in constant
time; without them every callback is refused (fail closed). Every answer means one thing
to Bandwidth: 200 stored (or already stored, or an event we do not use), 4xx never
stored, 503 not stored now, retry (it retries for 24 hours). Answers stay far under its
16 kB limit. See docs/bandwidth-setup.md.
"""

from __future__ import annotations

import base64
import binascii
import logging

from aiohttp import web

from pbxsms.core.plugin_api import (
    PublishError,
    Refusal,
    RouteRegister,
    Runtime,
    accept_inbound,
    accept_receipt,
    metrics,
    same_secret,
)
from pbxsms.plugins.bandwidth.inbound import (
    DeliveryReceipt,
    Ignored,
    InboundSms,
    parse_callback,
)
from pbxsms.plugins.bandwidth.settings import NAME, BandwidthSettings, bandwidth_settings

log = logging.getLogger("pbxsms.bandwidth.webhooks")

PATH = "/webhook/bandwidth"


def register_webhooks(runtime: Runtime, register: RouteRegister) -> None:
    async def callback(request: web.Request) -> web.Response:
        return await handle(runtime, request)

    register("POST", PATH, callback)


async def handle(runtime: Runtime, request: web.Request) -> web.Response:
    """Check the credentials, then parse every event, then store them."""
    refusal = credentials_refusal(request, bandwidth_settings(runtime.config))
    if refusal is not None:
        metrics.WEBHOOKS.labels(NAME, "webhook", "refused").inc()
        log.warning("refused a Bandwidth callback from %s: %s", request.remote, refusal)
        raise Refusal(401, refusal, "Authorization",
                      headers={"WWW-Authenticate": 'Basic realm="pbxsms"'})
    try:
        events = parse_callback(await request.read(), runtime.config.core.default_region)
    except Refusal as invalid:
        metrics.WEBHOOKS.labels(NAME, "webhook", "invalid").inc()
        log.info("invalid Bandwidth callback from %s: %d %s", request.remote, invalid.status,
                 invalid.message)
        raise
    results: list[dict[str, str]] = []
    try:
        for event in events:
            results.append(await _accept(runtime, event))
    except PublishError:
        # Some may be stored: Bandwidth's retry brings them again, deduplicated.
        raise Refusal(503, "not stored: the message bus is unavailable; retry later",
                      headers={"Retry-After": "5"}) from None
    return web.json_response({"results": results})


async def _accept(runtime: Runtime, event: InboundSms | DeliveryReceipt | Ignored
                  ) -> dict[str, str]:
    if isinstance(event, Ignored):
        metrics.WEBHOOKS.labels(NAME, "other", "ignored").inc()
        return {"result": "ignored", "type": event.type}
    if isinstance(event, InboundSms):
        accepted = await accept_inbound(runtime, event.message, event.dedupe_key)
    else:
        found = await accept_receipt(runtime, event.receipt, event.dedupe_key)
        if found is None:
            # Not ours (no tag of ours, no known id): nothing to retry.
            return {"result": "unmatched", "message_id": event.receipt.provider_message_id}
        accepted = found
    return {"result": "duplicate" if accepted.duplicate else "accepted", "id": accepted.id}


def credentials_refusal(request: web.Request, settings: BandwidthSettings) -> str | None:
    """None when the request carries the callback credentials; else why not."""
    username, password = settings.callback_username or "", settings.callback_secret
    if not username or not password:
        return ("BANDWIDTH_CALLBACK_USERNAME/PASSWORD unset: no Bandwidth callback is "
                "accepted")
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return "missing Basic credentials"
    try:
        given_user, _, given_password = base64.b64decode(
            encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "malformed Basic credentials"
    # Both compared, whatever the first gives: the timing says nothing about either.
    user_ok = same_secret(given_user, username)
    password_ok = same_secret(given_password, password)
    return None if user_ok and password_ok else "wrong callback credentials"
