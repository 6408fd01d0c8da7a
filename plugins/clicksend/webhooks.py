"""ClickSend's webhook routes: inbound SMS and delivery receipts.

Every answer means one thing to ClickSend: 200 stored (or already stored), 4xx never
stored and not worth retrying, 503 not stored now, retry. See docs/clicksend.md.
"""

from __future__ import annotations

import logging

from aiohttp import web

from pbxsms.bus.publish import PublishError
from pbxsms.core.health import metrics
from pbxsms.core.inbound.accept import accept_inbound, accept_receipt
from pbxsms.core.registry import RouteRegister
from pbxsms.core.serve.app import MAX_BODY
from pbxsms.core.serve.http import json_error, same_secret
from pbxsms.core.serve.runtime import Runtime
from pbxsms.plugins.clicksend.inbound import (
    PROVIDER,
    BadPayload,
    Fields,
    is_receipt,
    parse_inbound,
    parse_receipt,
    read_fields,
    subaccount_of,
)
from pbxsms.plugins.clicksend.mms import attach_media
from pbxsms.plugins.clicksend.settings import ClickSendSettings

log = logging.getLogger("pbxsms.clicksend.webhooks")

SMS_PATH = "/webhook/clicksend/sms"
DLR_PATH = "/webhook/clicksend/dlr"


def register_webhooks(runtime: Runtime, register: RouteRegister) -> None:
    """Inbound SMS at `SMS_PATH` (POST and GET; receipts too), receipts at `DLR_PATH`."""

    async def sms(request: web.Request) -> web.Response:
        return await handle(runtime, request, receipts_only=False)

    async def dlr(request: web.Request) -> web.Response:
        return await handle(runtime, request, receipts_only=True)

    register("POST", SMS_PATH, sms)
    register("GET", SMS_PATH, sms)
    register("POST", DLR_PATH, dlr)


async def handle(runtime: Runtime, request: web.Request, receipts_only: bool) -> web.Response:
    """Authenticate, parse, store; the answer says whether ClickSend should retry."""
    settings: ClickSendSettings = runtime.config.plugin(PROVIDER)
    kind = "receipt" if receipts_only else "inbound"
    refusal = token_refusal(request, settings)
    if refusal is not None:
        return _refused(request, kind, refusal)
    try:
        fields = await read_fields(request)
        if not receipts_only and is_receipt(fields):
            kind = "receipt"
        refusal = subaccount_refusal(fields, settings)
        if refusal is not None:
            return _refused(request, kind, refusal)
        if kind == "receipt":
            return await _receipt(runtime, fields)
        parsed = parse_inbound(fields, runtime.config.core.default_region)
        attach_media(parsed.message, fields, settings)
        accepted = await accept_inbound(runtime, parsed.message, parsed.dedupe_key)
    except BadPayload as error:
        return _invalid(request, kind, error.status, error.message, error.field)
    except web.HTTPRequestEntityTooLarge as error:
        return _invalid(request, kind, error.status, f"request body larger than {MAX_BODY} bytes")
    except PublishError:
        return _unavailable()
    return web.json_response({"result": "duplicate" if accepted.duplicate else "accepted",
                              "id": accepted.id})


async def _receipt(runtime: Runtime, fields: Fields) -> web.Response:
    if not is_receipt(fields):
        raise BadPayload(400, "not a delivery receipt: expected `message_id` with "
                              "`status_code`, `status_text` or `error_text` (inbound SMS "
                              f"go to {SMS_PATH})")
    parsed = parse_receipt(fields)
    accepted = await accept_receipt(runtime, parsed.receipt, parsed.dedupe_key)
    if accepted is None:
        return web.json_response({
            "result": "unmatched", "message_id": parsed.receipt.provider_message_id,
            "detail": "no message sent by this gateway has this message_id or "
                      "custom_string; nothing recorded"})
    return web.json_response({"result": "duplicate" if accepted.duplicate else "accepted",
                              "id": accepted.id})


def token_refusal(request: web.Request, settings: ClickSendSettings) -> web.Response | None:
    """401 unless the request carries `?token=` equal to CLICKSEND_WEBHOOK_TOKEN, when set."""
    expected = webhook_token(settings)
    if expected is None:
        return None
    if same_secret(request.query.get("token"), expected):
        return None
    return json_error(401, "missing or wrong `token` query parameter", field="token")


def subaccount_refusal(fields: Fields, settings: ClickSendSettings) -> web.Response | None:
    """403 unless the payload's `subaccount_id` equals CLICKSEND_SUBACCOUNT_ID, when set."""
    expected = (settings.subaccount_id or "").strip()
    if not expected:
        return None
    if same_secret(subaccount_of(fields), expected):
        return None
    return json_error(403, "`subaccount_id` missing or not this gateway's ClickSend "
                           "subaccount", field="subaccount_id")


def webhook_token(settings: ClickSendSettings) -> str | None:
    """CLICKSEND_WEBHOOK_TOKEN, None when unset or empty."""
    token = settings.webhook_token.get_secret_value() if settings.webhook_token else ""
    return token or None


def _refused(request: web.Request, kind: str, response: web.Response) -> web.Response:
    metrics.WEBHOOKS.labels(PROVIDER, kind, "refused").inc()
    log.warning("refused a ClickSend %s webhook from %s: %d %s", kind, request.remote,
                response.status, response.text)
    return response


def _invalid(request: web.Request, kind: str, status: int, message: str,
             field: str | None = None) -> web.Response:
    metrics.WEBHOOKS.labels(PROVIDER, kind, "invalid").inc()
    log.info("invalid ClickSend %s webhook from %s: %d %s", kind, request.remote, status,
             message)
    return json_error(status, message, field)


def _unavailable() -> web.Response:
    # accept_inbound/accept_receipt counted and logged it.
    return json_error(503, "not stored: the message bus is unavailable; retry later",
                      headers={"Retry-After": "5"})
