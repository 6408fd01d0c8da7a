"""Send requests: their checks and `POST /api/v1/messages`.

The API answers 202 once the request is durable on `sms.outbound`; any PBX service may
publish there instead, so the dispatcher runs the same checks again.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from pbxsms.bus.publish import PublishError
from pbxsms.core.config.settings import Config
from pbxsms.core.model.events import OutboundRequest, State, StatusEvent, utcnow
from pbxsms.core.model.phone import InvalidNumber, to_e164
from pbxsms.core.model.segments import SegmentCount, count_segments
from pbxsms.core.outbound.senders import Unroutable, resolve_sender
from pbxsms.core.registry import RouteHandler
from pbxsms.core.serve.http import api_refusal, json_body, json_error
from pbxsms.core.serve.runtime import Runtime

log = logging.getLogger("pbxsms.outbound")

SUBJECT = "sms.outbound"
# Our ids end up in subjects and KV keys: no dots, spaces or wildcards.
_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class Invalid(ValueError):
    """A send request we refuse; `field` names the offending field."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def usable_id(value: str) -> bool:
    return bool(_ID.match(value))


def check_request(request: OutboundRequest, config: Config) -> tuple[OutboundRequest,
                                                                      SegmentCount]:
    """The request with its numbers in E.164 and its segment count, or Invalid."""
    region = config.core.default_region
    try:
        to = to_e164(request.to, region)
    except InvalidNumber as error:
        raise Invalid(f"to: {error}", "to") from None
    sender = request.from_
    if sender is not None:
        try:
            sender = to_e164(sender, region)
        except InvalidNumber as error:
            raise Invalid(f"from: {error}", "from") from None
    extension = (request.extension or "").strip() or None
    if sender is None and extension is None:
        raise Invalid("give `from` (our number) or `extension`", "from")
    if not request.body.strip():
        raise Invalid("the message is empty", "body")
    count = count_segments(request.body)
    limit = config.file.outbound.max_segments
    if count.segments > limit:
        raise Invalid(
            f"the text takes {count.segments} SMS parts ({count.units} {count.encoding} "
            f"characters); the limit is {limit} parts ({count.max_units(limit)} "
            f"{count.encoding} characters, `[outbound] max_segments`)", "body")
    checked = request.model_copy(update={"to": to, "from_": sender, "extension": extension})
    return checked, count


def request_from_json(data: dict[str, Any]) -> OutboundRequest:
    """An OutboundRequest from the API's JSON object, or Invalid naming the bad field."""

    def text(name: str, numeric: bool = False, limit: int = 64) -> str | None:
        value = data.get(name)
        if value is None:
            return None
        if numeric and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise Invalid(f"{name} must be a string", name)
        if len(value) > limit:
            raise Invalid(f"{name} is longer than {limit} characters", name)
        return value

    body = data.get("body")
    if not isinstance(body, str):
        raise Invalid("body (the text) is required and must be a string", "body")
    to = text("to", numeric=True)
    if to is None:
        raise Invalid("to (the recipient) is required", "to")
    fields: dict[str, Any] = {
        "from": text("from", numeric=True), "extension": text("extension", numeric=True),
        "to": to, "body": body, "provider": text("provider"),
        "source": text("source") or "api", "in_reply_to": text("in_reply_to", limit=128)}
    given_id = text("id")
    if given_id is not None:
        if not _UUID.match(given_id.lower()):
            raise Invalid("id must be a UUID (it makes retries of this call safe)", "id")
        fields["id"] = given_id.lower()
    return OutboundRequest.model_validate(fields)


def send_handler(runtime: Runtime) -> RouteHandler:
    """`POST /api/v1/messages`: 202 `{"id", ...}` once the request is durable."""

    async def send(request: web.Request) -> web.Response:
        refusal = api_refusal(request, runtime.config.core.api_token)
        if refusal is not None:
            return refusal
        data = await json_body(request)
        if isinstance(data, web.Response):
            return data
        if not isinstance(data, dict):
            return json_error(400, "the body must be a JSON object")
        try:
            submitted = await submit(runtime, request_from_json(data))
        except Invalid as error:
            return json_error(422, error.message, field=error.field)
        except Unroutable as error:
            return json_error(422, error.reason, field=error.field)
        except PublishError:
            return json_error(503, "the message could not be stored; try again")
        outbound, count = submitted.request, submitted.count
        answer = {"id": outbound.id, "state": State.QUEUED.value, "segments": count.segments,
                  "encoding": count.encoding, "duplicate": submitted.duplicate}
        return web.json_response(answer, status=202,
                                 headers={"Location": f"/api/v1/messages/{outbound.id}"})

    return send


@dataclass(frozen=True)
class Submitted:
    """A send request stored on `sms.outbound`: as checked, its parts, whether a repeat."""

    request: OutboundRequest
    count: SegmentCount
    provider: str
    duplicate: bool


async def submit(runtime: Runtime, request: OutboundRequest) -> Submitted:
    """Check `request`, resolve its sender, store it and publish `queued`: the one way a
    send enters the gateway from a person (the API, the console). Invalid or Unroutable
    for a refused request; PublishError when it is not stored (answer 503)."""
    outbound, count = check_request(request, runtime.config)
    try:
        _, provider = await resolve_sender(runtime, outbound)
    except PublishError as error:
        log.warning("send request not taken: %s", error)
        raise
    queued_at = utcnow()  # before the dispatcher can see it, so history stays in order
    try:
        published = await runtime.publish(SUBJECT, outbound, outbound.id)
    except PublishError as error:
        log.warning("send request not stored: %s", error, extra={"msg_id": outbound.id})
        raise
    if not published.duplicate:
        await _queued(runtime, outbound, provider, count, queued_at)
    log.info("outbound message queued from %s via %s (%s, %d segment(s))%s",
             outbound.from_ or outbound.extension, provider, outbound.source or "api",
             count.segments, " (repeat)" if published.duplicate else "",
             extra={"msg_id": outbound.id})
    return Submitted(outbound, count, provider, published.duplicate)


async def _queued(runtime: Runtime, outbound: OutboundRequest, provider: str,
                  count: SegmentCount, at: datetime) -> None:
    status = StatusEvent(id=outbound.id, direction="outbound", state=State.QUEUED,
                         channel=provider, segments=count.segments, at=at,
                         details={"encoding": count.encoding, "source": outbound.source})
    try:
        await runtime.publish_status(status)
    except PublishError as error:
        # The request itself is stored and will be sent; only this status is missing.
        log.warning("queued status of %s not stored: %s", outbound.id, error,
                    extra={"msg_id": outbound.id})
