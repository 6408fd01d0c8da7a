"""ClickSend's webhook routes: inbound SMS and delivery receipts.

Every answer means one thing to ClickSend: 200 stored (or already stored), 4xx never
stored and not worth retrying, 503 not stored now, retry. See docs/clicksend.md.
"""

from __future__ import annotations

import logging
import re
from typing import NoReturn

from aiohttp import web

from pbxsms.core.plugin_api import (
    MAX_BODY,
    PublishError,
    Refusal,
    RouteRegister,
    Runtime,
    accept_inbound,
    accept_receipt,
    metrics,
    same_secret,
)
from pbxsms.plugins.clicksend.inbound import (
    PROVIDER,
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

_PLAIN_ID = re.compile(r"[0-9A-Za-z-]+")
_JSON = {"Content-Type": "application/json; charset=utf-8"}

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
    settings = runtime.config.plugin(PROVIDER, ClickSendSettings)
    kind = "receipt" if receipts_only else "inbound"
    try:
        check_token(request, settings)
        fields = await read_fields(request)
        if not receipts_only and is_receipt(fields):
            kind = "receipt"
        check_subaccount(fields, settings)
        if kind == "receipt":
            return await _receipt(runtime, fields)
        parsed = parse_inbound(fields, runtime.config.core.default_region)
        attach_media(parsed.message, fields, settings)
        accepted = await accept_inbound(runtime, parsed.message, parsed.dedupe_key)
    except web.HTTPRequestEntityTooLarge:
        _refuse(request, kind, Refusal(413, f"request body larger than {MAX_BODY} bytes"))
    except Refusal as refusal:
        _refuse(request, kind, refusal)
    except PublishError:
        # accept_inbound/accept_receipt counted and logged it.
        raise Refusal(503, "not stored: the message bus is unavailable; retry later",
                      headers={"Retry-After": "5"}) from None
    return stored_answer(accepted.duplicate, accepted.id)


def stored_answer(duplicate: bool, message_id: str) -> web.Response:
    """`json_response({"result": "accepted" or "duplicate", "id": message_id})`: the same
    bytes and headers, without json.dumps (two thirds of the answer's cost, on every
    webhook) when the id needs no escaping, as our ids never do."""
    if not _PLAIN_ID.fullmatch(message_id):
        return web.json_response({"result": "duplicate" if duplicate else "accepted",
                                  "id": message_id})
    return web.Response(body=b'{"result": "%s", "id": "%s"}' % (
        b"duplicate" if duplicate else b"accepted", message_id.encode()), headers=_JSON)


async def _receipt(runtime: Runtime, fields: Fields) -> web.Response:
    if not is_receipt(fields):
        raise Refusal(400, "not a delivery receipt: expected `message_id` with "
                           "`status_code`, `status_text` or `error_text` (inbound SMS "
                           f"go to {SMS_PATH})")
    parsed = parse_receipt(fields)
    accepted = await accept_receipt(runtime, parsed.receipt, parsed.dedupe_key)
    if accepted is None:
        return web.json_response({
            "result": "unmatched", "message_id": parsed.receipt.provider_message_id,
            "detail": "no message sent by this gateway has this message_id or "
                      "custom_string; nothing recorded"})
    return stored_answer(accepted.duplicate, accepted.id)


def check_token(request: web.Request, settings: ClickSendSettings) -> None:
    """Refusal 401 unless the request carries `?token=` equal to CLICKSEND_WEBHOOK_TOKEN;
    503 while no token is set (fail closed), unless CLICKSEND_WEBHOOK_INSECURE=true."""
    expected = webhook_token(settings)
    if expected is None:
        if settings.webhook_insecure:
            return
        raise Refusal(503, "ClickSend webhooks are refused until CLICKSEND_WEBHOOK_TOKEN is "
                           "set on the gateway", headers={"Retry-After": "300"})
    if not same_secret(request.query.get("token"), expected):
        raise Refusal(401, "missing or wrong `token` query parameter", field="token")


def webhook_exposure(settings: ClickSendSettings) -> str | None:
    """Why the webhooks are not checked as they should be (for /readyz), or None."""
    if webhook_token(settings) is not None:
        return None
    if settings.webhook_insecure:
        return ("ClickSend webhooks accept anyone: CLICKSEND_WEBHOOK_INSECURE=true and no "
                "CLICKSEND_WEBHOOK_TOKEN")
    return "ClickSend webhooks are refused (503): CLICKSEND_WEBHOOK_TOKEN is unset"


def check_subaccount(fields: Fields, settings: ClickSendSettings) -> None:
    """Refusal 403 unless the payload's `subaccount_id` equals CLICKSEND_SUBACCOUNT_ID,
    when set."""
    expected = (settings.subaccount_id or "").strip()
    received = subaccount_of(fields)
    if expected and not same_secret(received, expected):
        # Ids, not secrets: the operator sees which subaccount the webhook came from.
        # Only the log says what is expected; the caller is not told.
        shown = repr(received[:40]) if isinstance(received, str) else "none"
        log.warning("ClickSend webhook for subaccount_id %s, CLICKSEND_SUBACCOUNT_ID is %s",
                    shown, expected)
        raise Refusal(403, "`subaccount_id` missing or not this gateway's ClickSend "
                           "subaccount", field="subaccount_id")


def webhook_token(settings: ClickSendSettings) -> str | None:
    """CLICKSEND_WEBHOOK_TOKEN, None when unset or empty."""
    token = settings.webhook_token.get_secret_value() if settings.webhook_token else ""
    return token or None


def _refuse(request: web.Request, kind: str, refusal: Refusal) -> NoReturn:
    """Count and log a refused webhook (401/403: not ClickSend's; else malformed), then
    raise `refusal` for the error middleware to answer."""
    if refusal.status in (401, 403, 503):
        metrics.WEBHOOKS.labels(PROVIDER, kind, "refused").inc()
        log.warning("refused a ClickSend %s webhook from %s: %d %s", kind, request.remote,
                    refusal.status, refusal.message)
    else:
        metrics.WEBHOOKS.labels(PROVIDER, kind, "invalid").inc()
        log.info("invalid ClickSend %s webhook from %s: %d %s", kind, request.remote,
                 refusal.status, refusal.message)
    raise refusal
