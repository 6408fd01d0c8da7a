"""`POST /webhook/ringotel?token=...`: replies and delivery notices from the mobile app.

`method=message` is taken as a send request the way the API takes one (`queue_outbound`),
answered 200 only once it is stored (503 otherwise, so the app retries). Its id derives
from the app's `messageid` and what the reply is, so a repeated webhook sends once.
`method=delivered` adds the app's confirmation to the status of the message we pushed.
Other methods (typing, read, ...) are accepted and ignored.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any

from aiohttp import web

from pbxsms.core.plugin_api import (
    BUS_UNREADABLE,
    NOT_STORED,
    InvalidNumber,
    NoSender,
    OutboundRequest,
    PublishError,
    Refusal,
    Runtime,
    State,
    StatusEvent,
    metrics,
    new_id,
    queue_outbound,
    read_json,
    same_secret,
    to_e164,
)
from pbxsms.plugins.mobileapp.delivery import CHANNEL
from pbxsms.plugins.mobileapp.settings import MobileAppSettings

# The app's message type whose content is a media link.
MEDIA_LINK = 2

log = logging.getLogger("pbxsms.mobileapp.webhook")

PATH = "/webhook/ringotel"
# Fixed forever: reply ids must stay the same across versions and instances.
REPLY_NAMESPACE = uuid.UUID("5b0f3c52-8a57-4c0e-9d3e-2f6f0b8c1a47")
# A refused send request in the app's terms: its fields as the payload names them, and
# 503s that say "retry".
_REPLY_FIELDS = {"from": "params.from", "extension": "params.from",
                 "provider": "params.from", "to": "params.to", "body": "params.content"}
_REPLY_WORDS = {BUS_UNREADABLE: "cannot look up the conversation now; retry",
                NOT_STORED: "the reply could not be stored; retry"}


def reply_id(orgid: str, messageid: str, extension: str, to: str, content: str) -> str:
    """Our id of the app's message: the same on every repeat of the webhook, another for a
    different reply that reuses the `messageid` (other sender, customer or text)."""
    digest = hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()
    return str(uuid.uuid5(REPLY_NAMESPACE,
                          "\n".join((orgid, messageid, extension, to, digest))))


class RingotelWebhook:
    """The aiohttp handler."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def handle(self, request: web.Request) -> web.Response:
        settings = self.runtime.config.plugin("mobileapp", MobileAppSettings)
        token = settings.webhook_token
        if token is None or not token.get_secret_value():
            raise _refusal("-", "unauthorized", 401, "replies from the mobile app are disabled: "
                           "set RINGOTEL_WEBHOOK_TOKEN and add ?token=<it> to the app's "
                           "webhook URL")
        if not same_secret(request.query.get("token"), token.get_secret_value()):
            raise _refusal("-", "unauthorized", 401, "missing or wrong token", "token")
        try:
            payload = await read_json(request)
        except ValueError:
            raise _refusal("-", "invalid", 400, "the body must be JSON") from None
        if not isinstance(payload, dict):
            raise _refusal("-", "invalid", 400, "the body must be a JSON object")
        method = payload.get("method")
        if not isinstance(method, str) or not method:
            raise _refusal("-", "invalid", 400, "method is required", "method")
        if method not in ("message", "delivered"):
            _count("other", "ignored")
            log.debug("app webhook method %r ignored", method[:40])
            return web.json_response({"status": "ignored"})
        params = payload.get("params")
        if not isinstance(params, dict):
            raise _refusal(method, "invalid", 422, "params must be an object", "params")
        if method == "message":
            return await self._message(params, settings)
        return await self._delivered(params)

    async def _message(self, params: dict[str, Any],
                       settings: MobileAppSettings) -> web.Response:
        extension = _text(params.get("from"))
        if extension is None:
            raise _refusal("message", "invalid", 422, "the sending extension is required",
                           "params.from")
        content = params.get("content")
        if not isinstance(content, str) or not content.strip():
            raise _refusal("message", "invalid", 422, "the text is required",
                           "params.content")
        try:
            customer = to_e164(_text(params.get("to")) or "",
                               self.runtime.config.core.default_region)
        except InvalidNumber as error:
            raise _refusal("message", "invalid", 422, f"not a phone number: {error}",
                           "params.to") from None
        org = _text(params.get("orgid")) or settings.org_id
        messageid = _text(params.get("messageid"))
        if messageid is None:
            # Still sent: losing a reply is worse than a repeat we cannot recognise.
            log.warning("app reply without messageid: a repeat of it would send again")
        # Type 2: `content` is a link to a picture the user attached (an MMS); it is
        # fetched through the safe fetch, from PBXSMS_MEDIA_OUTBOUND_HOSTS only.
        media = params.get("type") == MEDIA_LINK
        outbound = OutboundRequest(
            id=(reply_id(org or "", messageid, extension, customer, content) if messageid
                else new_id()),
            extension=extension, to=customer, body="" if media else content,
            media_urls=[content.strip()] if media else [], source="mobileapp",
            mobileapp_org=org)
        try:
            domain = self._tenant(extension, org, settings)
            queued = await queue_outbound(self.runtime, outbound, domain)
        except NoSender as error:
            raise _refusal("message", "invalid", 422, str(error), "params.from") from None
        except Refusal as refusal:
            raise _refusal("message", "unavailable" if refusal.status == 503 else "invalid",
                           refusal.status, _REPLY_WORDS.get(refusal.message, refusal.message),
                           _REPLY_FIELDS.get(refusal.field or "", refusal.field)) from None
        _count("message", "duplicate" if queued.duplicate else "accepted")
        log.info("app reply %s from extension %s queued%s", outbound.id, extension,
                 " (repeat)" if queued.duplicate else "", extra={"msg_id": outbound.id})
        return web.json_response({"status": "accepted", "id": outbound.id,
                                  "duplicate": queued.duplicate})

    def _tenant(self, extension: str, org: str | None,
                settings: MobileAppSettings) -> str | None:
        """The tenant (PBX domain) of the replying extension; NoSender when it has none
        or several.

        The app names the extension and its organisation; the organisation tells the
        tenant apart when the same extension number exists in several.
        """
        numbers = self.runtime.numbers
        domains = {record.domain for record in numbers.numbers_of(extension)
                   if org is None or (record.mobileapp_org or settings.org_id) == org}
        if len(domains) > 1:
            raise NoSender(f"extension {extension} of organisation {org} has numbers in "
                           f"several tenants; give each number its own mobileapp_org")
        domain = next(iter(domains)) if domains else None
        if not domains and org is not None:
            raise NoSender(f"extension {extension} of organisation {org} has no enabled "
                           "number in the message settings")
        return domain

    async def _delivered(self, params: dict[str, Any]) -> web.Response:
        messageid = _text(params.get("messageid"))
        if messageid is None:
            raise _refusal("delivered", "invalid", 422, "messageid is required",
                           "params.messageid")
        try:
            self.runtime.require_bus()  # fail fast: the app retries a 503
            ours = await self.runtime.status.find_by_provider_id(CHANNEL, messageid)
        except Exception as error:
            log.warning("app delivered notice: lookup failed: %s", error)
            raise _refusal("delivered", "unavailable", 503,
                           "cannot look up the message now; retry") from None
        if ours is None:
            _count("delivered", "unknown")
            return web.json_response({"status": "unknown"})
        event = StatusEvent(id=ours, direction="inbound", state=State.DELIVERED,
                            channel=CHANNEL, provider_message_id=messageid,
                            details={"confirmed_by": "app"})
        try:
            await self.runtime.publish_status(event)
        except PublishError as error:
            log.warning("app delivered notice for %s not stored: %s", ours, error,
                        extra={"msg_id": ours})
            raise _refusal("delivered", "unavailable", 503,
                           "the status could not be stored; retry") from None
        _count("delivered", "accepted")
        return web.json_response({"status": "accepted", "id": ours})


def _text(value: object) -> str | None:
    """A non-empty string from a string or a number (the app may send either)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text or None


def _count(kind: str, result: str) -> None:
    metrics.WEBHOOKS.labels(CHANNEL, kind, result).inc()


def _refusal(kind: str, result: str, status: int, message: str,
             field: str | None = None) -> Refusal:
    """The Refusal to raise for a webhook of `kind`, counted as `result`."""
    _count(kind, result)
    return Refusal(status, message, field)
