"""Send requests: their checks, taking one (`queue_outbound`) and `POST /api/v1/messages`.

The API and the mobile app's replies take a request the same way: checked, its sender
resolved, durable on `sms.outbound`, then `queued`. Any PBX service may publish there
instead, so the dispatcher runs the same checks again.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from nats.errors import Error as NatsError

from pbxsms.bus.publish import BusError, PublishError
from pbxsms.core.config.settings import Config
from pbxsms.core.media.outbound import with_media
from pbxsms.core.model.events import OutboundRequest, State, StatusEvent, utcnow
from pbxsms.core.model.phone import InvalidNumber, to_e164
from pbxsms.core.model.segments import STANDARD, Billing, SegmentCount, count_segments
from pbxsms.core.outbound.senders import resolve_sender
from pbxsms.core.refusal import Refusal
from pbxsms.core.registry import RouteHandler, billing_of
from pbxsms.core.serve.http import api_caller, json_body
from pbxsms.core.serve.runtime import Runtime

log = logging.getLogger("pbxsms.outbound")

SUBJECT = "sms.outbound"
# Our ids end up in subjects and KV keys: no dots, spaces or wildcards.
_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
# Who asked: a short token, so it can be logged and labelled as it is (never a line break).
_SOURCE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MMS_TEXT = {"GSM-7": 1500, "UCS-2": 500}
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# The two 503s of `queue_outbound`: nothing was taken, the caller may try again.
BUS_UNREADABLE = "the message bus is unavailable; try again"
NOT_STORED = "the message could not be stored; try again"
RETRY = {"Retry-After": "5"}


class InvalidRequest(Refusal):
    """A 422: a send request we refuse; `field` names the offending field.

    The dispatcher marks such a request `failed`, with `code` as its error code.
    """

    code = "INVALID_REQUEST"

    def __init__(self, message: str, field: str) -> None:
        super().__init__(422, message, field)


def is_text(value: str) -> bool:
    """Whether `value` can be stored and sent: JSON may carry lone surrogates, which no
    encoding can write."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class OptedOut(InvalidRequest):
    """A 422: the recipient opted out of texts from the sending number (STOP)."""

    code = "OPTED_OUT"


async def refuse_opted_out(runtime: Runtime, request: OutboundRequest, sender: str) -> None:
    """OptedOut when `request.to` opted out of texts from `sender`: checked before any
    carrier call. The reply confirming their STOP is the one message let through.
    PublishError when the opt-outs cannot be read now."""
    try:
        word = await runtime.optouts.get(sender, request.to)
    except (BusError, NatsError, TimeoutError, OSError) as error:
        raise PublishError(f"opt-outs not readable: {type(error).__name__}: "
                           f"{error}") from error
    if word is None or not word.opted_out or word.confirmation_id == request.id:
        return
    how = (f"texted {word.keyword}" if word.source == "keyword"
           else "is opted out at the carrier")
    raise OptedOut(f"opted_out: the recipient {how} to {sender}; nothing is sent to them "
                   "from this number until they text START", "to")


def usable_id(value: str) -> bool:
    return bool(_ID.match(value))


def check_request(request: OutboundRequest, config: Config) -> tuple[OutboundRequest,
                                                                      SegmentCount]:
    """The request with its numbers in E.164 and its segment count, or InvalidRequest."""
    region = config.core.default_region
    try:
        to = to_e164(request.to, region)
    except InvalidNumber as error:
        raise InvalidRequest(f"to: {error}", "to") from None
    sender = request.from_
    if sender is not None:
        try:
            sender = to_e164(sender, region)
        except InvalidNumber as error:
            raise InvalidRequest(f"from: {error}", "from") from None
    extension = (request.extension or "").strip() or None
    if not _SOURCE.fullmatch(request.source):
        raise InvalidRequest("source must be 1 to 64 of A-Z, a-z, 0-9, '_', '.', '-'",
                             "source")
    for name, value in (("body", request.body), ("extension", extension)):
        if value is not None and not is_text(value):
            raise InvalidRequest(f"{name} is not valid Unicode text (a lone surrogate?)",
                                 name)
    if sender is None and extension is None:
        raise InvalidRequest("give `from` (our number) or `extension`", "from")
    if not request.body.strip() and not request.is_mms:
        raise InvalidRequest("the message is empty", "body")
    count = measure(request, config)
    checked = request.model_copy(update={"to": to, "from_": sender, "extension": extension})
    return checked, count


def measure(request: OutboundRequest, config: Config,
            billing: Billing = STANDARD) -> SegmentCount:
    """The parts of the request's text as `billing` counts them; InvalidRequest beyond
    `[outbound] max_segments` (for an MMS, beyond its text's limit)."""
    count = count_segments(request.body, billing)
    limit = config.file.outbound.max_segments
    if request.is_mms:
        # One message, cut (not split) past this (ClickSend: 1500, or 500 outside GSM-7).
        most = MMS_TEXT[count.encoding]
        if len(request.body) > most:
            raise InvalidRequest(f"an MMS text is at most {most} {count.encoding} "
                                 "characters", "body")
    elif count.segments > limit:
        raise InvalidRequest(
            f"the text takes {count.segments} SMS parts ({count.units} {count.encoding} "
            f"characters); the limit is {limit} parts ({count.max_units(limit)} "
            f"{count.encoding} characters, `[outbound] max_segments`)", "body")
    return count


def request_from_json(data: dict[str, Any]) -> OutboundRequest:
    """An OutboundRequest from the API's JSON object, or InvalidRequest naming the bad field."""

    def text(name: str, numeric: bool = False, limit: int = 64) -> str | None:
        value = data.get(name)
        if value is None:
            return None
        if numeric and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise InvalidRequest(f"{name} must be a string", name)
        if len(value) > limit:
            raise InvalidRequest(f"{name} is longer than {limit} characters", name)
        return value

    body = data.get("body")
    if not isinstance(body, str):
        raise InvalidRequest("body (the text) is required and must be a string", "body")
    to = text("to", numeric=True)
    if to is None:
        raise InvalidRequest("to (the recipient) is required", "to")
    fields: dict[str, Any] = {
        "from": text("from", numeric=True), "extension": text("extension", numeric=True),
        "to": to, "body": body, "provider": text("provider"),
        "source": text("source") or "api", "in_reply_to": text("in_reply_to", limit=128)}
    given_id = text("id")
    if given_id is not None:
        if not _UUID.match(given_id.lower()):
            raise InvalidRequest("id must be a UUID (it makes retries of this call safe)", "id")
        fields["id"] = given_id.lower()
    return OutboundRequest.model_validate(fields)


@dataclass(frozen=True)
class Queued:
    """A send request taken: durable on `sms.outbound`, from the number it leaves from."""

    request: OutboundRequest
    provider: str
    count: SegmentCount
    duplicate: bool


async def queue_outbound(runtime: Runtime, request: OutboundRequest,
                         domain: str | None = None, tenant: str | None = None) -> Queued:
    """Check `request`, resolve its sender, store it on `sms.outbound`, publish `queued`.

    InvalidRequest (OptedOut among them) or UnroutableRequest (422) when it cannot be
    sent; Refusal 503 when the bus cannot be read or written now. `domain` is the tenant
    of `request.extension` when the caller knows it; `tenant` limits the sending number
    to that tenant's (Refusal 403 otherwise). The request is stored with the
    number resolved here, so the dispatcher sends from the number the caller was told about.
    """
    try:
        checked, _ = check_request(request, runtime.config)
        runtime.require_bus()  # every step from here reads or writes the bus
        sender, provider = await resolve_sender(runtime, checked, domain)
        owner = _tenant_of(runtime, sender)
        if tenant is not None and owner != tenant:
            raise Refusal(403, f"{sender} is not a number of tenant {tenant}",
                          "from" if checked.from_ else "extension")
        # Counted as the provider bills it: the count the caller is told.
        count = measure(checked, runtime.config, billing_of(runtime.providers[provider]))
        await refuse_opted_out(runtime, checked, sender)
    except PublishError as error:
        log.warning("send request not taken: %s", error, extra={"msg_id": request.id})
        raise Refusal(503, BUS_UNREADABLE, headers=RETRY) from None
    outbound = checked.model_copy(update={"from_": sender})
    queued_at = utcnow()  # before the dispatcher can see it, so history stays in order
    try:
        published = await runtime.publish(SUBJECT, outbound, outbound.id)
    except PublishError as error:
        log.warning("send request not stored: %s", error, extra={"msg_id": outbound.id})
        raise Refusal(503, NOT_STORED, headers=RETRY) from None
    if not published.duplicate:
        await _queued(runtime, outbound, provider, count, queued_at, owner, published.seq)
    log.info("outbound message queued from %s via %s (source %r, %d segment(s))%s",
             sender, provider, outbound.source, count.segments,
             " (repeat)" if published.duplicate else "", extra={"msg_id": outbound.id})
    return Queued(outbound, provider, count, published.duplicate)


def send_handler(runtime: Runtime) -> RouteHandler:
    """`POST /api/v1/messages`: 202 `{"id", ...}` once the request is durable."""

    async def send(request: web.Request) -> web.Response:
        caller = api_caller(request, runtime.config.core)
        data = await json_body(request)
        if not isinstance(data, dict):
            raise Refusal(400, "the body must be a JSON object")
        # Media ids are looked up (a 422 names one not stored) before the request is queued.
        outbound = await with_media(runtime, request_from_json(data), data)
        queued = await queue_outbound(runtime, outbound, caller.domain, tenant=caller.domain)
        outbound, count = queued.request, queued.count
        answer = {"id": outbound.id, "state": State.QUEUED.value, "segments": count.segments,
                  "encoding": count.encoding, "duplicate": queued.duplicate}
        if outbound.is_mms:
            answer["media"] = len(outbound.media) + len(outbound.media_urls)
        return web.json_response(answer, status=202,
                                 headers={"Location": f"/api/v1/messages/{outbound.id}"})

    return send


def _tenant_of(runtime: Runtime, number: str) -> str | None:
    record = runtime.numbers.get(number)
    return record.domain if record is not None else None


async def _queued(runtime: Runtime, outbound: OutboundRequest, provider: str,
                  count: SegmentCount, at: datetime, domain: str | None, seq: int) -> None:
    details = {"encoding": count.encoding, "source": outbound.source}
    if outbound.resend_of:
        details["resend_of"] = outbound.resend_of
    status = StatusEvent(id=outbound.id, direction="outbound", state=State.QUEUED,
                         channel=provider, segments=count.segments, at=at, domain=domain,
                         details=details, stream_seq=seq)
    try:
        await runtime.publish_status(status)
    except PublishError as error:
        # The request itself is stored and will be sent; only this status is missing.
        log.warning("queued status of %s not stored: %s", outbound.id, error,
                    extra={"msg_id": outbound.id})
