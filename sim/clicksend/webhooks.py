"""What ClickSend pushes to a gateway: inbound SMS (an inbound rule's action URL, as form, JSON
or GET) and delivery receipts, tied to the messages it sent."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args
from urllib.parse import urlencode

from aiohttp import ClientSession
from yarl import URL

from pbxsms.sim.clicksend.state import ClickSendState
from pbxsms.sim.server import JsonDict

WebhookType = Literal["post", "json", "get"]
ReceiptFormat = Literal["form", "json"]
WEBHOOK_TYPES: tuple[str, ...] = get_args(WebhookType)
RECEIPT_FORMATS: tuple[str, ...] = get_args(ReceiptFormat)

# Receipt defaults per gateway status_code: (status_text, error_code, error_text).
_RECEIPT_TEXT: dict[int, tuple[str, int | None, str | None]] = {
    200: ("Sent: Message sent to the network for delivery.", None, None),
    201: ("Success: Message received on handset.", None, None),
    300: ("Failed: Temporary network error, will be retried.", 16, "Temporary network error"),
    301: ("Failed: Unknown failure.", 7, "Unknown failure"),
}
# Field order of the third-party form sample (reference §3b).
_FORM_ORDER = (
    "originalsenderid",
    "body",
    "message",
    "sms",
    "from",
    "to",
    "timestamp",
    "message_id",
    "original_message_id",
    "originalmessageid",
    "original_body",
    "originalmessage",
    "user_id",
    "subaccount_id",
    "custom_string",
    "customstring",
)
# Form/GET inbound pushes carry the third-party-observed legacy aliases too.
_FORM_ALIASES = {
    "originalmessageid": "original_message_id",
    "originalmessage": "original_body",
    "customstring": "custom_string",
}


@dataclass
class PushResult:
    """What the gateway answered to a pushed webhook, and exactly what was pushed."""

    status: int
    body: str
    url: str
    payload: JsonDict


def _given(value: object, fallback: object) -> object:
    return fallback if value is None else value


class Webhooks:
    """Builds ClickSend's webhook payloads and posts them through the simulator's session."""

    def __init__(self, state: ClickSendState, session: Callable[[], ClientSession]) -> None:
        self.state = state
        self._session = session

    async def push_inbound(
        self,
        url: str,
        from_: str,
        to: str,
        body: str,
        *,
        webhook_type: WebhookType = "post",
        message_id: str | None = None,
        original_message_id: str | None = None,
        original_body: str | None = None,
        custom_string: str | None = None,
        subaccount_id: int | None = None,
        user_id: int | None = None,
        timestamp: int | None = None,
        media: Sequence[str] = (),
    ) -> PushResult:
        """Deliver an inbound SMS webhook as an inbound rule with action URL would.

        An inbound MMS's `media` links come in the text, one a line after the caption
        (ClickSend converts attachments to links; its exact payload is undocumented).

        Like ClickSend, a reply is tied to the last message sent to `from_` (or to
        `original_message_id`): its id, body and custom_string are echoed unless given.
        """
        if webhook_type not in WEBHOOK_TYPES:
            raise ValueError(f"webhook_type must be one of {WEBHOOK_TYPES}")
        body = "\n".join([body, *media]) if body and media else body or "\n".join(media)
        original = self.state.find_sent(original_message_id, from_, to)
        owner = self.state.owner_of(original)
        fields: JsonDict = {
            "originalsenderid": to,
            "body": body,
            "message": body,
            "sms": from_,
            "from": from_,
            "to": to,
            "timestamp": int(time.time()) if timestamp is None else timestamp,
            "message_id": message_id or str(uuid.uuid4()).upper(),
            "original_message_id": original_message_id
            or (original["message_id"] if original else ""),
            "original_body": _given(original_body, original.get("body", "") if original else ""),
            "user_id": _given(user_id, owner[0]),
            "subaccount_id": _given(subaccount_id, owner[1]),
            "custom_string": _given(
                custom_string, (original.get("custom_string") or "") if original else ""
            ),
        }
        if webhook_type == "json":
            return await self._push("POST", url, fields, json_body=fields)
        # All values as strings, as a form carries them.
        pairs = [(k, str(fields[_FORM_ALIASES.get(k, k)])) for k in _FORM_ORDER]
        if webhook_type == "get":
            target = str(URL(url).update_query(pairs))
            return await self._push("GET", target, dict(pairs))
        return await self._push("POST", url, dict(pairs), form=pairs)

    async def push_receipt(
        self,
        url: str,
        message_id: str,
        status_code: int = 201,
        *,
        status_text: str | None = None,
        error_code: int | None = None,
        error_text: str | None = None,
        custom_string: str | None = None,
        subaccount_id: int | None = None,
        timestamp: int | None = None,
        timestamp_send: int | None = None,
        message_type: str = "sms",
        fmt: ReceiptFormat = "form",
    ) -> PushResult:
        """Deliver a delivery receipt (200 sent, 201 delivered, 300 retrying, 301 failed).

        The push's content type is undocumented: form-encoded by default, JSON on request.
        `status_code` is a string in both, as in ClickSend's own examples.
        """
        sent = self.state.find_sent(message_id, None, None)
        default_text, default_error, default_error_text = _RECEIPT_TEXT.get(
            status_code, (f"Status {status_code}", None, None)
        )
        now = int(time.time())
        fields: JsonDict = {
            "timestamp_send": _given(
                timestamp_send, sent["date"] if sent and "date" in sent else now
            ),
            "timestamp": _given(timestamp, now),
            "message_id": message_id,
            "status_code": str(status_code),
            "status_text": status_text or default_text,
            "error_code": _given(error_code, default_error),
            "error_text": _given(error_text, default_error_text),
            "custom_string": _given(
                custom_string, (sent.get("custom_string") or None) if sent else None
            ),
            "subaccount_id": _given(subaccount_id, self.state.owner_of(sent)[1]),
            "message_type": message_type,
            "digits": None,
        }
        if fmt == "json":
            return await self._push("POST", url, fields, json_body=fields)
        pairs = [(k, "" if v is None else str(v)) for k, v in fields.items()]
        return await self._push("POST", url, dict(pairs), form=pairs)

    async def _push(
        self,
        method: str,
        url: str,
        payload: JsonDict,
        *,
        json_body: JsonDict | None = None,
        form: list[tuple[str, str]] | None = None,
    ) -> PushResult:
        data: str | None = None
        headers: dict[str, str] = {}
        if json_body is not None:
            data, headers["Content-Type"] = json.dumps(json_body), "application/json"
        elif form is not None:
            data = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        async with self._session().request(method, url, data=data, headers=headers) as resp:
            return PushResult(status=resp.status, body=await resp.text(), url=url, payload=payload)
