"""The ClickSend simulator's `/_sim/` control API: inspect what was sent, queue faults,
configure accounts and numbers, and push inbound SMS and receipts to a gateway."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import asdict
from typing import TYPE_CHECKING

import phonenumbers
from aiohttp import web

from pbxsms.sim.clicksend.api import SEND_PATH
from pbxsms.sim.clicksend.gate import FAULT_KINDS
from pbxsms.sim.clicksend.webhooks import RECEIPT_FORMATS, WEBHOOK_TYPES
from pbxsms.sim.server import (
    ControlError,
    ControlHandler,
    control_json,
    fault_kind,
    json_response,
    ok,
    relay,
)

if TYPE_CHECKING:
    from pbxsms.sim.clicksend.simulator import ClickSendSimulator


class ClickSendControls:
    """The control handlers of one simulator; each docstring's first line is its summary."""

    def __init__(self, sim: ClickSendSimulator) -> None:
        self.sim = sim

    def routes(self) -> dict[tuple[str, str], ControlHandler]:
        return {
            ("GET", "/_sim/messages"): self.messages,
            ("GET", "/_sim/requests"): self.requests,
            ("POST", "/_sim/reset"): self.reset,
            ("POST", "/_sim/fail"): self.fail,
            ("POST", "/_sim/force_status"): self.force_status,
            ("POST", "/_sim/accounts"): self.accounts,
            ("POST", "/_sim/numbers"): self.numbers,
            ("POST", "/_sim/config"): self.config,
            ("POST", "/_sim/inbound"): self.inbound,
            ("POST", "/_sim/receipt"): self.receipt,
            ("POST", "/_sim/media"): self.media,
            ("GET", "/_sim/uploads"): self.uploads,
        }

    async def messages(self, request: web.Request) -> web.StreamResponse:
        """The send calls and the messages accepted so far."""
        requests = [asdict(r) for r in self.sim.send_requests]
        return json_response(200, {"requests": requests, "messages": self.sim.sent_messages})

    async def requests(self, request: web.Request) -> web.StreamResponse:
        """Every `/v3/*` call, with headers, body, answer status and injected fault."""
        return json_response(200, {"requests": [asdict(r) for r in self.sim.requests]})

    async def reset(self, request: web.Request) -> web.StreamResponse:
        """Forget recorded traffic, queued faults and throttling; keep configuration."""
        self.sim.reset()
        return ok()

    async def fail(self, request: web.Request) -> web.StreamResponse:
        """Queue faults (429, 500, store_then_500, drop, delay) for the next calls."""
        args = await control_json(request)
        kind = fault_kind(args, FAULT_KINDS)
        try:
            self.sim.fail_next(
                kind,
                int(args.get("count", 1)),
                retry_after=int(args.get("retry_after", 1)),
                delay=float(args.get("delay", 0.0)),
                endpoint=args.get("endpoint", SEND_PATH),
            )
        except (TypeError, ValueError) as exc:
            raise ControlError(str(exc)) from exc
        return ok(queued=len(self.sim.faults))

    async def force_status(self, request: web.Request) -> web.StreamResponse:
        """Give every message to a number this send status (null removes it)."""
        args = await control_json(request)
        number, status = args.get("number"), args.get("status")
        if not isinstance(number, str) or not (status is None or isinstance(status, str)):
            raise ControlError("expected {'number': str, 'status': str | null}")
        self.sim.force_status(number, status)
        return ok()

    async def accounts(self, request: web.Request) -> web.StreamResponse:
        """Add (or replace) an API account."""
        args = await control_json(request)
        username, api_key = args.get("username"), args.get("api_key")
        if not isinstance(username, str) or not isinstance(api_key, str):
            raise ControlError("expected {'username': str, 'api_key': str}")
        sub_id = args.get("subaccount_id")
        try:
            subaccount_id = int(sub_id) if sub_id is not None else None
        except (TypeError, ValueError) as exc:
            raise ControlError(f"bad subaccount_id: {exc}") from exc
        account = self.sim.add_account(username, api_key, subaccount_id, email=args.get("email"))
        return ok(subaccount_id=account.subaccount_id)

    async def numbers(self, request: web.Request) -> web.StreamResponse:
        """Add a dedicated number."""
        args = await control_json(request)
        number = args.get("number")
        if not isinstance(number, str):
            raise ControlError("expected {'number': str}")
        try:
            record = self.sim.add_number(number, status=int(args.get("status", 0)))
        except (phonenumbers.NumberParseException, KeyError, ValueError) as exc:
            raise ControlError(f"bad number: {exc}") from exc
        return json_response(200, record)

    async def config(self, request: web.Request) -> web.StreamResponse:
        """Change throttling, the enabled countries or rate-limit enforcement."""
        args = await control_json(request)
        settings = self.sim.settings
        try:
            if "throttle_seconds" in args:
                value = args["throttle_seconds"]
                settings.throttle_seconds = None if value is None else float(value)
            if "enabled_countries" in args:
                value = args["enabled_countries"]
                settings.enabled_countries = (
                    None if value is None else {str(c).upper() for c in value}
                )
        except (TypeError, ValueError) as exc:
            raise ControlError(str(exc)) from exc
        if "enforce_rate_limits" in args:
            settings.enforce_rate_limits = bool(args["enforce_rate_limits"])
        return ok()

    async def inbound(self, request: web.Request) -> web.StreamResponse:
        """Push an inbound SMS to a gateway URL, as an inbound rule would."""
        args = await control_json(request)
        url, from_, to, body = (args.get(k) for k in ("url", "from", "to", "body"))
        if not all(isinstance(v, str) for v in (url, from_, to, body)):
            raise ControlError("expected url, from, to and body strings")
        webhook_type = args.get("webhook_type", "post")
        if webhook_type not in WEBHOOK_TYPES:
            raise ControlError(f"webhook_type must be one of {list(WEBHOOK_TYPES)}")
        return await relay(
            self.sim.push_inbound(
                str(url),
                str(from_),
                str(to),
                str(body),
                webhook_type=webhook_type,
                message_id=args.get("message_id"),
                original_message_id=args.get("original_message_id"),
                original_body=args.get("original_body"),
                custom_string=args.get("custom_string"),
                subaccount_id=args.get("subaccount_id"),
                user_id=args.get("user_id"),
                timestamp=args.get("timestamp"),
                media=_links(args.get("media")),
            )
        )

    async def media(self, request: web.Request) -> web.StreamResponse:
        """Host a media file (base64 `content`) and get its link, for an inbound MMS."""
        args = await control_json(request)
        content, content_type = args.get("content"), args.get("content_type", "image/jpeg")
        redirect_to = args.get("redirect_to")
        if not isinstance(content, str) or not isinstance(content_type, str) or not (
                redirect_to is None or isinstance(redirect_to, str)):
            raise ControlError("expected content (base64), content_type and redirect_to "
                               "strings")
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ControlError(f"content is not base64: {exc}") from exc
        url = self.sim.add_media(data, content_type, redirect_to=redirect_to,
                                 chunked=bool(args.get("chunked", False)))
        return ok(url=url)

    async def uploads(self, request: web.Request) -> web.StreamResponse:
        """The media uploaded through `/v3/uploads`, and how often each was fetched."""
        files = [{"url": url, "content_type": found.content_type, "size": len(found.data),
                  "sha256": hashlib.sha256(found.data).hexdigest(), "expires": found.expires}
                 for url in self.sim.mms.uploads if (found := self.sim.mms.file_of(url))]
        return json_response(200, {"uploads": files})

    async def receipt(self, request: web.Request) -> web.StreamResponse:
        """Push a delivery receipt for a sent message to a gateway URL."""
        args = await control_json(request)
        url, message_id = args.get("url"), args.get("message_id")
        if not isinstance(url, str) or not isinstance(message_id, str):
            raise ControlError("expected url and message_id strings")
        fmt = args.get("format", "form")
        if fmt not in RECEIPT_FORMATS:
            raise ControlError("format must be 'form' or 'json'")
        try:
            status_code = int(args.get("status_code", 201))
        except (TypeError, ValueError) as exc:
            raise ControlError(f"bad status_code: {exc}") from exc
        return await relay(
            self.sim.push_receipt(
                url,
                message_id,
                status_code,
                status_text=args.get("status_text"),
                error_code=args.get("error_code"),
                error_text=args.get("error_text"),
                custom_string=args.get("custom_string"),
                subaccount_id=args.get("subaccount_id"),
                timestamp=args.get("timestamp"),
                timestamp_send=args.get("timestamp_send"),
                message_type=str(args.get("message_type", "sms")),
                fmt=fmt,
            )
        )


def _links(value: object) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ControlError("media must be a list of links")
    return list(value)
