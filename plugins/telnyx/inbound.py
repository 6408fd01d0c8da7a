"""Telnyx's webhook envelope → an inbound SMS, a delivery receipt, or an event we ignore.

`{"data": {"event_type", "id", "occurred_at", "payload", "record_type": "event"},
"meta": {"attempt", "delivered_to"}}`: `data.id` is the event, `payload.id` the message.
Unknown fields are ignored; a field we need that is missing or of the wrong type is a
`Refusal` naming it.
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
from pbxsms.plugins.telnyx.settings import NAME

INBOUND = "message.received"
RECEIPTS = frozenset({"message.sent", "message.finalized"})

# `to[].status` of an outbound message → our state. `delivery_unconfirmed` is Telnyx's
# last word when the carrier sent no receipt: not delivered, not failed.
STATES = {
    "queued": State.ACCEPTED,
    "sending": State.SENDING,
    "sent": State.SENT,
    "delivered": State.DELIVERED,
    "delivery_failed": State.FAILED,
    "sending_failed": State.FAILED,
    "expired": State.FAILED,
    "delivery_unconfirmed": State.UNKNOWN,
}
OPT_OUT_CODE = "40300"

# Telnyx ids are UUIDs; anything short and printable is tolerated, never whitespace: the
# id becomes a NATS header and a KV key.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class Envelope:
    event_type: str
    event_id: str
    occurred_at: str | None
    payload: JsonDict
    attempt: int | None


@dataclass(frozen=True)
class InboundSms:
    message: InboundMessage
    dedupe_key: str


@dataclass(frozen=True)
class DeliveryReceipt:
    receipt: Receipt
    dedupe_key: str


def read_envelope(raw: bytes) -> Envelope:
    body = parse_json(raw)
    if not isinstance(body, dict):
        body = {}
    data = body.get("data")
    if not isinstance(data, dict):
        raise Refusal(400, "expected a Telnyx event: an object with `data`", "data")
    event_type = _str(data, "event_type", "data.event_type")
    event_id = _id(data.get("id"), "data.id")
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise Refusal(400, "`data.payload` must be an object", "data.payload")
    occurred = data.get("occurred_at")
    meta = body.get("meta")
    attempt = meta.get("attempt") if isinstance(meta, dict) else None
    return Envelope(event_type, event_id, occurred if isinstance(occurred, str) else None,
                    payload, attempt if isinstance(attempt, int) else None)


def parse_inbound(envelope: Envelope, region: str) -> InboundSms:
    """A `message.received` event as our inbound message, deduplicated on Telnyx's
    message id (a repeated event, whatever its event id, is the same message)."""
    payload = envelope.payload
    direction = payload.get("direction")
    if direction is not None and direction != "inbound":
        raise Refusal(422, f"`message.received` with direction {direction!r}",
                         "data.payload.direction")
    message_id = _id(payload.get("id"), "data.payload.id")
    sender = _sender(_party(payload.get("from"), "data.payload.from"), region,
                     "data.payload.from.phone_number")
    recipients = payload.get("to")
    if not isinstance(recipients, list) or not recipients:
        raise Refusal(400, "`data.payload.to` must be a non-empty list", "data.payload.to")
    recipient = _number(_party(recipients[0], "data.payload.to[0]"), region,
                        "data.payload.to[0].phone_number")
    text = payload.get("text")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise Refusal(400, "`data.payload.text` must be a string", "data.payload.text")
    extra = {"event_id": envelope.event_id}
    profile = payload.get("messaging_profile_id")
    if isinstance(profile, str) and profile:
        extra["messaging_profile_id"] = profile
    message = InboundMessage(provider=NAME, provider_message_id=message_id, to=recipient,
                             body=text, sent_at=_time(envelope.occurred_at), extra=extra,
                             media_urls=media_urls(payload.get("media")),
                             sender_type=sender.type, **{"from": sender.address})
    return InboundSms(message, f"{NAME}:{message_id}")


def media_urls(value: object) -> list[str]:
    """The `url` of each `data.payload.media[]` item ({url, content_type, size,
    hash_sha256}); fetched later under the plugin's media policy."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise Refusal(400, "`data.payload.media` must be a list", "data.payload.media")
    found = []
    for index, item in enumerate(value):
        url = item.get("url") if isinstance(item, dict) else None
        if not isinstance(url, str) or not url.strip():
            raise Refusal(400, f"missing `data.payload.media[{index}].url`",
                          f"data.payload.media[{index}].url")
        found.append(url.strip())
    return found


def parse_receipt(envelope: Envelope) -> DeliveryReceipt:
    """A `message.sent` / `message.finalized` event as a receipt of our message, deduplicated
    on Telnyx's message id and status (a repeated event changes nothing)."""
    payload = envelope.payload
    if payload.get("direction") not in (None, "outbound"):
        raise Refusal(422, f"a receipt for a message of direction "
                              f"{payload.get('direction')!r}", "data.payload.direction")
    message_id = _id(payload.get("id"), "data.payload.id")
    recipients = payload.get("to")
    first = recipients[0] if isinstance(recipients, list) and recipients else None
    status = first.get("status") if isinstance(first, dict) else None
    if not isinstance(status, str) or not status:
        raise Refusal(400, "missing `data.payload.to[0].status`", "data.payload.to")
    state = STATES.get(status, State.UNKNOWN)
    codes = _errors(payload.get("errors"))
    error_code = codes[0][0] if codes else None
    details: JsonDict = {"source": "telnyx receipt", "status": status,
                         "event_type": envelope.event_type, "event_id": envelope.event_id}
    if envelope.occurred_at:
        details["occurred_at"] = envelope.occurred_at
    reason = None
    if state in (State.FAILED, State.UNKNOWN):
        reason = "; ".join(f"{code} {text}".strip() for code, text in codes) or status
    if error_code == OPT_OUT_CODE:
        details[OPTED_OUT] = True
        reason = f"recipient opted out (STOP): {reason}"
    receipt = Receipt(provider=NAME, provider_message_id=message_id, state=state,
                      reason=reason, error_code=error_code, details=details)
    return DeliveryReceipt(receipt, f"{NAME}:dlr:{message_id}:{status}")


def _errors(value: object) -> list[tuple[str, str]]:
    """(code, title or detail) of each entry of an `errors[]` list."""
    found = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict) and item.get("code") is not None:
            text = item.get("title") or item.get("detail") or ""
            found.append((str(item["code"])[:16], str(text)[:200]))
    return found


def _str(data: JsonDict, name: str, path: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise Refusal(400, f"missing `{path}`", path)
    return value


def _id(value: object, path: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise Refusal(400, f"`{path}` is not a Telnyx id", path)
    return value


def _party(value: object, path: str) -> str:
    number = value.get("phone_number") if isinstance(value, dict) else None
    if not isinstance(number, str) or not number.strip():
        raise Refusal(400, f"missing `{path}.phone_number`", f"{path}.phone_number")
    return number


def _sender(value: str, region: str, path: str) -> Sender:
    """A phone number, a short code or a sender name, kept as sent (never read as digits)."""
    try:
        return classify_sender(value, region)
    except InvalidNumber as error:
        raise Refusal(400, f"`{path}` is not a usable sender: {error}", path) from None


def _number(value: str, region: str, path: str) -> str:
    try:
        return to_e164(value, region)
    except InvalidNumber as error:
        raise Refusal(400, f"`{path}` is not a usable phone number: {error}", path) from None


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
