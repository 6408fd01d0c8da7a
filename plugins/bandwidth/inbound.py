"""Bandwidth's callbacks → inbound SMS and delivery receipts.

Every callback is a JSON array of events `{type, time, description, to, message{...}}`;
`message-failed` adds `errorCode`. Our own id comes back as `message.tag`. Unknown fields
are ignored; a field we need that is missing or of the wrong type is a `Refusal`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pbxsms.core.plugin_api import (
    OPTED_OUT,
    InboundMessage,
    InvalidNumber,
    Receipt,
    Refusal,
    Sender,
    State,
    classify_sender,
    parse_json,
    to_e164,
)
from pbxsms.plugins.bandwidth.settings import NAME

INBOUND = "message-received"
RECEIPTS = {"message-sending": State.SENDING, "message-delivered": State.DELIVERED,
            "message-failed": State.FAILED}
OPT_OUT_CODES = frozenset({"4775"})
# No receipt within 2 h, or unknown: Bandwidth cannot say whether it arrived.
AMBIGUOUS_CODES = frozenset({"9902", "9999"})

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class InboundSms:
    message: InboundMessage
    dedupe_key: str


@dataclass(frozen=True)
class DeliveryReceipt:
    receipt: Receipt
    dedupe_key: str


@dataclass(frozen=True)
class Ignored:
    type: str


Event = InboundSms | DeliveryReceipt | Ignored


def parse_callback(raw: bytes, region: str) -> list[Event]:
    """Every event of a callback, or a Refusal for the first one that is unreadable
    (nothing of the callback is stored then)."""
    body = parse_json(raw)
    if isinstance(body, dict):
        body = [body]  # tolerated: one event not wrapped in its array
    if not isinstance(body, list) or not body:
        raise Refusal(400, "expected a Bandwidth callback: a non-empty JSON array")
    return [parse_event(item, n, region) for n, item in enumerate(body)]


def parse_event(item: object, n: int, region: str) -> Event:
    where = f"[{n}]"
    if not isinstance(item, dict):
        raise Refusal(400, f"`{where}` must be an object", where)
    kind = item.get("type")
    if not isinstance(kind, str) or not kind:
        raise Refusal(400, f"missing `{where}.type`", f"{where}.type")
    if kind != INBOUND and kind not in RECEIPTS:
        return Ignored(kind)
    message = item.get("message")
    if not isinstance(message, dict):
        raise Refusal(400, f"`{where}.message` must be an object", f"{where}.message")
    message_id = message.get("id")
    if not isinstance(message_id, str) or not _ID.fullmatch(message_id):
        raise Refusal(400, f"`{where}.message.id` is not a Bandwidth id",
                         f"{where}.message.id")
    if kind == INBOUND:
        return _inbound(item, message, message_id, where, region)
    return _receipt(kind, item, message, message_id)


def _inbound(item: JsonDict, message: JsonDict, message_id: str, where: str,
             region: str) -> InboundSms:
    if message.get("direction") not in (None, "in"):
        # An outbound message reported here must never look like a customer's text.
        raise Refusal(422, f"`{where}.message.direction` is not `in`",
                         f"{where}.message.direction")
    sender = _sender(message.get("from"), region, f"{where}.message.from")
    # `to` of the event: the owned number this event is for (one event per owned
    # recipient of a group message); else the message's only recipient.
    recipients = message.get("to")
    owned = item.get("to") or (recipients[0] if isinstance(recipients, list) and recipients
                               else None)
    recipient = _number(owned, region, f"{where}.to")
    text = message.get("text")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise Refusal(400, f"`{where}.message.text` must be a string",
                         f"{where}.message.text")
    extra = {name: value for name in ("applicationId", "owner")
             if isinstance(value := message.get(name), str) and value}
    inbound = InboundMessage(provider=NAME, provider_message_id=message_id, to=recipient,
                             body=text, sent_at=_time(message.get("time")), extra=extra,
                             media_urls=_media(message.get("media"), where),
                             sender_type=sender.type, **{"from": sender.address})
    return InboundSms(inbound, f"{NAME}:{message_id}")


def _media(value: object, where: str) -> list[str]:
    """The URLs of `message.media[]`, fetched later under the plugin's media policy; a
    SMIL file (the slide show's layout) is not media."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(url, str) for url in value):
        raise Refusal(400, f"`{where}.message.media` must be a list of URLs",
                      f"{where}.message.media")
    return [url.strip() for url in value
            if url.strip() and not url.split("?", 1)[0].lower().endswith(".smil")]


def _receipt(kind: str, item: JsonDict, message: JsonDict, message_id: str
             ) -> DeliveryReceipt:
    state = RECEIPTS[kind]
    code = item.get("errorCode")
    error_code = str(code)[:16] if code is not None else None
    description = item.get("description")
    details: JsonDict = {"source": "bandwidth callback", "type": kind}
    if isinstance(item.get("time"), str):
        details["time"] = item["time"]
    reason = str(description)[:300] if state == State.FAILED and description else None
    if error_code in AMBIGUOUS_CODES:
        state = State.UNKNOWN
    if error_code in OPT_OUT_CODES:
        details[OPTED_OUT] = True
        reason = f"recipient opted out (STOP): {reason or error_code}"
    tag = message.get("tag")
    receipt = Receipt(provider=NAME, provider_message_id=message_id, state=state,
                      id_hint=tag if isinstance(tag, str) else None, reason=reason,
                      error_code=error_code, details=details)
    return DeliveryReceipt(receipt, f"{NAME}:dlr:{message_id}:{kind}")


def _sender(value: object, region: str, path: str) -> Sender:
    """A phone number, a short code or a sender name, kept as sent (never read as digits)."""
    if not isinstance(value, str) or not value.strip():
        raise Refusal(400, f"missing `{path}`", path)
    try:
        return classify_sender(value, region)
    except InvalidNumber as error:
        raise Refusal(400, f"`{path}` is not a usable sender: {error}", path) from None


def _number(value: object, region: str, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Refusal(400, f"missing `{path}`", path)
    try:
        return to_e164(value, region)
    except InvalidNumber as error:
        raise Refusal(400, f"`{path}` is not a usable phone number: {error}", path) from None


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
