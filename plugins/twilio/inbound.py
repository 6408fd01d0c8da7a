"""Twilio's webhook parameters → an inbound SMS or a delivery receipt.

Twilio adds parameters without notice: unknown ones are ignored. What is read must make
sense: a message SID, phone numbers for `From` and `To`, a known `MessageStatus`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pbxsms.core.plugin_api import (
    InboundMessage,
    InvalidNumber,
    Receipt,
    Refusal,
    Sender,
    State,
    classify_sender,
    to_e164,
)
from pbxsms.plugins.twilio.codes import OPTED_OUT, describe
from pbxsms.plugins.twilio.settings import NAME

Fields = dict[str, str]

# Two letters and 32 hex digits (SM..., MM...): also safe as a NATS header and KV key.
SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")
_CODE = re.compile(r"[0-9]{1,6}")

# MessageStatus of an outbound message → our state. `queued`, `accepted` and `scheduled`
# are what the create call already told us; `read` is WhatsApp's and later than delivered.
STATES = {
    "accepted": State.ACCEPTED,
    "scheduled": State.ACCEPTED,
    "queued": State.ACCEPTED,
    "sending": State.ACCEPTED,
    "sent": State.SENT,
    "delivered": State.DELIVERED,
    "read": State.DELIVERED,
    "undelivered": State.FAILED,
    "failed": State.FAILED,
    "canceled": State.FAILED,
    "partially_delivered": State.UNKNOWN,
}
# The statuses of a message Twilio received: not a receipt of ours.
INBOUND_STATUSES = frozenset({"receiving", "received"})
# Kept in the inbound event's `extra` (account ids and where the sender is).
EXTRA = ("AccountSid", "MessagingServiceSid", "NumSegments", "NumMedia", "FromCountry",
         "FromState", "FromCity")
# Twilio delivers at most 10 media per inbound message (MediaUrl0 ... MediaUrl9).
MAX_MEDIA = 10


def fields_of(pairs: list[tuple[str, str]] | dict[str, Any]) -> Fields:
    """The first value of each name (a JSON object's scalar values as text)."""
    fields: Fields = {}
    items = pairs.items() if isinstance(pairs, dict) else pairs
    for name, value in items:
        if isinstance(value, str):
            fields.setdefault(name, value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            fields.setdefault(name, str(value))
    return fields


def message_sid(fields: Fields) -> str:
    """`MessageSid` (or the older `SmsSid`), checked."""
    value = (fields.get("MessageSid") or fields.get("SmsSid") or "").strip()
    if not value:
        raise Refusal(400, "missing `MessageSid`", "MessageSid")
    if not SID.fullmatch(value):
        raise Refusal(400, "`MessageSid` is not a Twilio message SID", "MessageSid")
    return value


def _number(fields: Fields, name: str, region: str) -> str:
    value = (fields.get(name) or "").strip()
    if not value:
        raise Refusal(400, f"missing `{name}`", name)
    try:
        return to_e164(value, region)
    except InvalidNumber as error:
        raise Refusal(400, f"`{name}` is not a usable phone number: {error}", name) from None


def _sender(fields: Fields, region: str) -> Sender:
    """A phone number, a short code or a sender name, kept as sent (never read as digits)."""
    value = (fields.get("From") or "").strip()
    if not value:
        raise Refusal(400, "missing `From`", "From")
    try:
        return classify_sender(value, region)
    except InvalidNumber as error:
        raise Refusal(400, f"`From` is not a usable sender: {error}", "From") from None


@dataclass(frozen=True)
class InboundSms:
    """A customer's SMS as Twilio reported it, numbers already E.164."""

    message: InboundMessage
    dedupe_key: str


def parse_inbound(fields: Fields, region: str) -> InboundSms:
    """An inbound SMS, or Refusal naming the field that is wrong."""
    sid = message_sid(fields)
    if "Body" not in fields:
        raise Refusal(400, "missing `Body`", "Body")
    extra = {name: fields[name] for name in EXTRA if fields.get(name)}
    sender = _sender(fields, region)
    message = InboundMessage(provider=NAME, provider_message_id=sid,
                             to=_number(fields, "To", region), body=fields["Body"],
                             extra=extra, media_urls=media_urls(fields),
                             sender_type=sender.type, **{"from": sender.address})
    return InboundSms(message, f"{NAME}:{sid}")


def media_urls(fields: Fields) -> list[str]:
    """`MediaUrl0` ... `MediaUrl{NumMedia-1}`, as Twilio numbers them; fetched later under
    the plugin's media policy, which refuses what is not Twilio's."""
    count = (fields.get("NumMedia") or "0").strip()
    if not count.isdigit():
        raise Refusal(400, "`NumMedia` is not a number", "NumMedia")
    found = [fields.get(f"MediaUrl{index}", "").strip()
             for index in range(min(int(count), MAX_MEDIA))]
    return [url for url in found if url]


@dataclass(frozen=True)
class DeliveryReceipt:
    """A status callback about one of our outbound messages."""

    receipt: Receipt
    status: str
    dedupe_key: str


def parse_receipt(fields: Fields, our_id: str | None) -> DeliveryReceipt:
    """A receipt, or Refusal. `our_id` is the `id` of our StatusCallback URL."""
    sid = message_sid(fields)
    status = (fields.get("MessageStatus") or fields.get("SmsStatus") or "").strip().lower()
    if not status:
        raise Refusal(400, "missing `MessageStatus`", "MessageStatus")
    if status in INBOUND_STATUSES:
        raise Refusal(422, f"`MessageStatus` {status} is about a message Twilio received, "
                              "not one we sent: inbound messages go to /webhook/twilio/sms",
                         "MessageStatus")
    state = STATES.get(status)
    if state is None:
        raise Refusal(422, f"unknown `MessageStatus` {status!r}", "MessageStatus")
    code_text = (fields.get("ErrorCode") or "").strip()
    code = int(code_text) if _CODE.fullmatch(code_text) and int(code_text) else None
    reason = None
    if code is not None:
        reason = describe(code, (fields.get("ErrorMessage") or "").strip())
    elif state in (State.FAILED, State.UNKNOWN):
        reason = f"Twilio: {status}"
    details: dict[str, Any] = {"source": "twilio status callback", "status": status}
    if code == OPTED_OUT:
        details["opted_out"] = True
    receipt = Receipt(provider=NAME, provider_message_id=sid, state=state, id_hint=our_id,
                      reason=reason, error_code=str(code) if code is not None else None,
                      details=details)
    return DeliveryReceipt(receipt, status, f"{NAME}:{sid}:{status}")
