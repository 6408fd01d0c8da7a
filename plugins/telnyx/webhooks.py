"""Telnyx's webhook route: inbound messages and receipts on one URL, signature first.

Every answer means one thing to Telnyx: 200 stored (or already stored, or an event we do
not use), 4xx never stored and not worth retrying, 503 not stored now, retry. Telnyx
waits 2 s for it, then tries again (3 attempts per URL). See docs/telnyx-setup.md.
"""

from __future__ import annotations

import logging
from typing import NoReturn

from aiohttp import web

from pbxsms.core.plugin_api import (
    PublishError,
    Refusal,
    ReplayGuard,
    RouteRegister,
    Runtime,
    accept_inbound,
    accept_receipt,
    metrics,
)
from pbxsms.plugins.telnyx.inbound import (
    INBOUND,
    RECEIPTS,
    parse_inbound,
    parse_receipt,
    read_envelope,
)
from pbxsms.plugins.telnyx.settings import NAME, TelnyxSettings, telnyx_settings
from pbxsms.plugins.telnyx.signature import (
    SIGNATURE_HEADER,
    BadKey,
    BadSignature,
    public_key,
    verify,
)

log = logging.getLogger("pbxsms.telnyx.webhooks")

PATH = "/webhook/telnyx"
# Telnyx reports a send at once, sometimes before our record of its acceptance is stored,
# and gives up on an answer after 2 s: a receipt looks for its message this long.
RECEIPT_WAIT = 1.0


def register_webhooks(runtime: Runtime, register: RouteRegister) -> None:
    # A signature is valid for the whole window on either side of now.
    guard = ReplayGuard(2 * telnyx_settings(runtime.config).timestamp_tolerance)

    async def webhook(request: web.Request) -> web.Response:
        return await handle(runtime, guard, request)

    register("POST", PATH, webhook)


async def handle(runtime: Runtime, guard: ReplayGuard, request: web.Request) -> web.Response:
    """Verify the signature over the raw body, then parse, then store."""
    settings = telnyx_settings(runtime.config)
    raw = await request.read()  # over MAX_BODY: 413 from the error middleware
    try:
        signature = _verified(settings, request, raw)
    except BadSignature as error:
        _refuse(request, Refusal(401, str(error), SIGNATURE_HEADER))
    if guard.seen(signature):
        _refuse(request, Refusal(409, "replayed webhook: this signed request was already "
                                      "taken", SIGNATURE_HEADER))
    kind = "webhook"
    try:
        envelope = read_envelope(raw)
        if envelope.event_type == INBOUND:
            kind = "inbound"
            parsed = parse_inbound(envelope, runtime.config.core.default_region)
            accepted = await accept_inbound(runtime, parsed.message, parsed.dedupe_key)
        elif envelope.event_type in RECEIPTS:
            kind = "receipt"
            receipt = parse_receipt(envelope)
            found = await accept_receipt(runtime, receipt.receipt, receipt.dedupe_key,
                                         wait=RECEIPT_WAIT)
            if found is None:
                # Not 2xx, so Telnyx tries again: our send's acceptance may be stored later.
                raise Refusal(404, "no message sent by this gateway has Telnyx id "
                                   f"{receipt.receipt.provider_message_id} (yet); nothing "
                                   "recorded", "data.payload.id")
            accepted = found
        else:
            # Telnyx sends other event types to the same URL (e.g. `message.sending`
            # would be new): acknowledged, so it does not retry, and counted.
            metrics.WEBHOOKS.labels(NAME, "other", "ignored").inc()
            log.info("ignored a Telnyx %s event %s", envelope.event_type, envelope.event_id)
            guard.remember(signature)
            return web.json_response({"result": "ignored", "event_type": envelope.event_type})
    except Refusal as refusal:
        metrics.WEBHOOKS.labels(NAME, kind, "invalid").inc()
        log.info("invalid Telnyx %s webhook from %s: %d %s", kind, request.remote,
                 refusal.status, refusal.message)
        raise
    except PublishError:
        # accept_inbound/accept_receipt counted and logged it.
        raise Refusal(503, "not stored: the message bus is unavailable; retry later",
                      headers={"Retry-After": "5"}) from None
    guard.remember(signature)
    return web.json_response({"result": "duplicate" if accepted.duplicate else "accepted",
                              "id": accepted.id})


def _verified(settings: TelnyxSettings, request: web.Request, raw: bytes) -> str:
    if not settings.public_key:
        raise BadSignature("TELNYX_PUBLIC_KEY is unset: no Telnyx webhook can be verified")
    try:
        key = public_key(settings.public_key)
    except BadKey as error:
        raise BadSignature(str(error)) from None
    return verify(key, request.headers, raw, settings.timestamp_tolerance)


def _refuse(request: web.Request, refusal: Refusal) -> NoReturn:
    metrics.WEBHOOKS.labels(NAME, "webhook", "refused").inc()
    log.warning("refused a Telnyx webhook from %s: %d %s", request.remote, refusal.status,
                refusal.message)
    raise refusal
