"""Twilio's webhook routes: inbound messages and status callbacks.

Each request is authenticated Twilio's way before anything in it is read (see
signature.py), over the public URL Twilio called (PBXSMS_PUBLIC_URL + path + query), so
it holds behind a TLS proxy and a request signed for another URL is refused. Then a
replay of a webhook already stored is refused (replays.py), and the event goes to the
core, which stores it once per Twilio id. Answers: 200 stored (`<Response/>` TwiML for
messages: no auto-reply; 204 for status callbacks), 4xx refused and never stored, 409 a
replay of one stored, 503 not stored now.
"""

from __future__ import annotations

import json
import logging
from typing import NoReturn
from urllib.parse import parse_qsl

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
    our_id,
    public_url,
    same_secret,
)
from pbxsms.plugins.twilio import signature
from pbxsms.plugins.twilio.inbound import (
    Fields,
    fields_of,
    message_sid,
    parse_inbound,
    parse_receipt,
)
from pbxsms.plugins.twilio.replays import Replays, Unavailable, inbound_key, status_key
from pbxsms.plugins.twilio.settings import NAME, TwilioSettings, twilio_settings

log = logging.getLogger("pbxsms.twilio.webhooks")

SMS_PATH = "/webhook/twilio/sms"
STATUS_PATH = "/webhook/twilio/status"
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
FORM = "application/x-www-form-urlencoded"


class Replayed(Exception):
    """A webhook whose event is already stored."""


def register_webhooks(runtime: Runtime, register: RouteRegister) -> None:
    replays = Replays(runtime)

    async def sms(request: web.Request) -> web.StreamResponse:
        return await handle(runtime, replays, request, "inbound")

    async def status(request: web.Request) -> web.StreamResponse:
        return await handle(runtime, replays, request, "receipt")

    register("POST", SMS_PATH, sms)
    register("POST", STATUS_PATH, status)


async def handle(runtime: Runtime, replays: Replays, request: web.Request,
                 kind: str) -> web.StreamResponse:
    settings = twilio_settings(runtime.config)
    try:
        fields = await signed_fields(request, settings, runtime.config.core.public_url)
    except Refusal as refusal:
        _refuse(request, kind, refusal, "refused")
    try:
        if settings.account_sid and not same_secret(fields.get("AccountSid"),
                                                    settings.account_sid):
            raise Refusal(403, "`AccountSid` is not TWILIO_ACCOUNT_SID", "AccountSid")
        if kind == "inbound":
            return await _inbound(runtime, replays, fields)
        return await _receipt(runtime, replays, fields, request.query.get("id"))
    except Replayed as error:
        metrics.WEBHOOKS.labels(NAME, kind, "replayed").inc()
        log.warning("refused a replayed Twilio %s webhook from %s: %s", kind, request.remote,
                    error)
        raise Refusal(409, f"already received: {error}; nothing stored") from None
    except Refusal as refusal:
        _refuse(request, kind, refusal, "invalid")
    except Unavailable as error:
        metrics.WEBHOOKS.labels(NAME, kind, "unavailable").inc()
        log.warning("Twilio %s webhook not stored, answering 503: replays cannot be checked: "
                    "%s", kind, error)
        raise Refusal(503, "not stored: the message bus is unavailable; retry later",
                      headers={"Retry-After": "5"}) from None
    except PublishError:
        # accept_inbound/accept_receipt counted and logged it.
        raise Refusal(503, "not stored: the message bus is unavailable; retry later",
                      headers={"Retry-After": "5"}) from None


async def signed_fields(request: web.Request, settings: TwilioSettings,
                        base: str | None) -> Fields:
    """The parameters of a request Twilio signed for our public URL; Refusal otherwise."""
    token = settings.token
    if not token:
        log.error("a Twilio webhook arrived but TWILIO_AUTH_TOKEN is unset: every Twilio "
                  "webhook is refused")
        raise Refusal(401, "TWILIO_AUTH_TOKEN is unset: signatures cannot be checked")
    # Behind a TLS proxy the request's own URL is the proxy's: Twilio signed the public one.
    url = public_url(base, request.raw_path)
    if url is None:
        log.error("a Twilio webhook arrived but PBXSMS_PUBLIC_URL is unset: every Twilio "
                  "webhook is refused")
        raise Refusal(401, "PBXSMS_PUBLIC_URL is unset: signatures cannot be checked")
    algorithm = _algorithm(request.headers.get(signature.SETTINGS_HEADER))
    if algorithm != "HMAC_SHA1":
        raise Refusal(401, f"signed with {algorithm} (a Webhook Rule's SharedKey): pbxsms "
                              "checks signatures made with the Auth Token",
                         signature.SETTINGS_HEADER)
    given = request.headers.get(signature.HEADER)
    if not given:
        raise Refusal(401, f"missing {signature.HEADER}", signature.HEADER)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise Refusal(413, f"request body larger than {MAX_BODY} bytes") from None
    if request.content_type == FORM:
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise Refusal(400, "the form is not valid UTF-8") from None
        if not signature.valid(token, url, pairs, given):
            raise Refusal(401, f"{signature.HEADER} does not match this request to {url}",
                             signature.HEADER)
        return fields_of(pairs)
    if request.content_type == "application/json":
        if not (signature.body_hash_matches(url, raw)
                and signature.valid(token, url, [], given)):
            raise Refusal(401, f"{signature.HEADER} or `bodySHA256` does not match this "
                                  f"request to {url}", signature.HEADER)
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise Refusal(400, "malformed JSON") from None
        if not isinstance(data, dict):
            raise Refusal(400, "the JSON body must be an object")
        return fields_of(data)
    raise Refusal(415, f"unsupported content type {request.content_type!r}: Twilio posts "
                          "forms (or JSON with `bodySHA256`)")


def _algorithm(header: str | None) -> str:
    """The algorithm the signature-settings header names; HMAC_SHA1 when absent."""
    for part in (header or "").split(","):
        name, separator, value = part.partition("=")
        if separator and name.strip() == "algorithm" and value.strip():
            return value.strip().upper()
    return "HMAC_SHA1"


async def _inbound(runtime: Runtime, replays: Replays, fields: Fields) -> web.Response:
    key = inbound_key(message_sid(fields))
    if await replays.seen(key):
        raise Replayed(f"message {message_sid(fields)}")
    parsed = parse_inbound(fields, runtime.config.core.default_region)
    # A duplicate here (a copy racing this one, or a retry after a 503 whose publish did
    # land) is stored once and answered 200 like the first: it is no replay of ours.
    await accept_inbound(runtime, parsed.message, parsed.dedupe_key)
    await _remember(replays, key)
    return web.Response(text=TWIML, content_type="text/xml")


async def _receipt(runtime: Runtime, replays: Replays, fields: Fields,
                   our: str | None) -> web.Response:
    parsed = parse_receipt(fields, our_id(our))
    sid = parsed.receipt.provider_message_id
    key = status_key(sid, parsed.status)
    if await replays.seen(key):
        raise Replayed(f"status {parsed.status} of {sid}")
    accepted = await accept_receipt(runtime, parsed.receipt, parsed.dedupe_key)
    if accepted is None:
        # Not ours (another application on the account): nothing to retry.
        return web.json_response({"result": "unmatched", "sid": sid})
    await _remember(replays, key)
    return web.Response(status=204)


async def _remember(replays: Replays, key: str) -> None:
    try:
        await replays.remember(key)
    except Exception as error:  # stored already; within JetStream's window a replay stores nothing
        log.warning("Twilio webhook %s stored but not remembered against replays: %s", key,
                    error)


def _refuse(request: web.Request, kind: str, refusal: Refusal, result: str) -> NoReturn:
    """Count and log the refusal, then raise it (the error middleware answers it)."""
    metrics.WEBHOOKS.labels(NAME, kind, result).inc()
    log.warning("%s a Twilio %s webhook from %s: %d %s", result, kind, request.remote,
                refusal.status, refusal.message)
    raise refusal
