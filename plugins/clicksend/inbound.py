"""ClickSend's webhook payloads → an inbound SMS or a delivery receipt.

Lenient about form: a JSON object, a form (urlencoded or multipart) or a query string;
values as strings or numbers; the legacy aliases (`sms`, `originalsenderid`, `message`,
`originalmessageid`, `customstring`). Strict about meaning: a recipient that is a phone
number, a sender that is one (or a short code or a name, kept as sent), a usable message
id, text that is text. `original_body` is our own earlier message and is never read as the
customer's text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

from aiohttp import web

from pbxsms.core.plugin_api import (
    InboundMessage,
    InvalidNumber,
    Receipt,
    Refusal,
    Sender,
    State,
    classify_sender,
    content_key,
    our_id,
    parse_json,
    to_e164,
)

PROVIDER = "clicksend"

Fields = dict[str, object]

# ClickSend ids are upper-case UUIDs; anything printable and short is tolerated, but never
# whitespace or control characters: the id becomes a NATS header and a KV key.
_MESSAGE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

# A payload is a receipt when it has a message_id and one of these (as FS PBX classifies).
RECEIPT_MARKERS = ("status_code", "status_text", "error_text")

_STATUS_CODE = re.compile(r"[0-9]{1,5}")
_STATES = {200: State.SENT, 201: State.DELIVERED, 300: State.SENT, 301: State.FAILED}


# -- decoding the request ------------------------------------------------------------------


async def read_fields(request: web.Request) -> Fields:
    """The payload's fields, whatever ClickSend's `webhook_type`; the `token` is not one."""
    if request.method == "GET" or not request.body_exists:
        return _fields(request.query.items())
    kind = request.content_type
    if kind == "multipart/form-data":
        try:
            form = await request.post()
        except (web.HTTPRequestEntityTooLarge, Refusal):  # too large, too slow
            raise
        except Exception as error:  # aiohttp's multipart parser raises many kinds
            raise Refusal(400, f"malformed multipart body: {error}") from None
        return _fields(form.items())
    is_json = kind == "application/json" or kind.endswith("+json")
    if not is_json and kind != "application/x-www-form-urlencoded":
        raise Refusal(415, f"unsupported content type {kind!r}: send JSON, a form, "
                           "or a GET query string")
    raw = await request.read()
    if not raw.strip():
        return _fields(request.query.items())
    if is_json:
        return _json_fields(raw)
    charset = request.charset or "utf-8"
    try:
        # The declared charset holds both the raw bytes and what %XX escapes stand for.
        return form_fields(raw.decode(charset), charset)
    except (LookupError, ValueError) as error:  # unknown charset, bytes not in it
        raise Refusal(400, f"malformed form body: {error}") from None


def form_fields(text: str, charset: str = "utf-8") -> Fields:
    """A urlencoded form's fields (`_fields` of its pairs); ValueError for escapes not in
    `charset`.

    The pairs `parse_qsl(text, keep_blank_values=True, errors="strict")` returns, read in
    one pass, without unquoting what has nothing to unquote (most values): a fifth of a
    webhook's parsing.
    """
    fields: Fields = {}
    decoded: dict[str, str] = {}  # ClickSend sends most values twice, under an alias too
    for pair in text.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if "%" in pair or "+" in pair:
            if "+" in name:
                name = name.replace("+", " ")
            if "%" in name:
                name = _unquote(name, charset)
            if "+" in value or "%" in value:
                value = decoded.get(value) or decoded.setdefault(value, _plain(value, charset))
        if name not in fields:  # the first value of a repeated name, as `_fields`
            fields[name] = value
    fields.pop("token", None)
    return fields


def _plain(value: str, charset: str) -> str:
    if "+" in value:
        value = value.replace("+", " ")
    return _unquote(value, charset) if "%" in value else value


def _unquote(text: str, charset: str) -> str:
    """`unquote(text, encoding=charset, errors="strict")`; for ASCII text (a form as
    browsers and ClickSend send it) that is one decode of the unescaped bytes, without
    its splitting into ASCII and other runs."""
    if text.isascii():
        return unquote_to_bytes(text).decode(charset, "strict")
    return unquote(text, encoding=charset, errors="strict")


def _fields(pairs: Iterable[tuple[str, object]]) -> Fields:
    """The first value of each name (forms and queries may repeat one), without `token`."""
    fields: Fields = {}
    for key, value in pairs:
        fields.setdefault(key, value)
    fields.pop("token", None)
    return fields


def _json_fields(raw: bytes) -> Fields:
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise Refusal(400, "the JSON body must be an object")
    return data


# -- reading fields ------------------------------------------------------------------------


def _text(fields: Fields, name: str) -> str | None:
    """A field as text; None when absent or null. Numbers become their digits."""
    value = fields.get(name)
    if value.__class__ is str and value.isascii():  # a form's field, most of them
        return value  # isascii is a flag of the string: nothing to encode to know
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Refusal(400, f"`{name}` is not valid Unicode text", name) from None
        return value
    if isinstance(value, bool):
        raise Refusal(400, f"`{name}` must be a string or a number, not a boolean", name)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Refusal(400, f"`{name}` must be a finite number", name)
        return str(int(value)) if value.is_integer() else repr(value)
    raise Refusal(400, f"`{name}` must be a string or a number", name)


def _first(fields: Fields, *names: str) -> tuple[str, str] | None:
    """(name, value) of the first of `names` with a non-blank value."""
    for name in names:
        value = fields.get(name)
        if value.__class__ is not str or not value.isascii():  # see `_text`
            value = _text(fields, name)
            if value is None:
                continue
        if value := value.strip():
            return name, value
    return None


def _optional(fields: Fields, *names: str) -> str | None:
    """The first of `names` with a non-blank value, stripped (`_first` without the name).
    A form's ASCII value is taken as `_text` takes it, without the call (a dozen reads
    per webhook)."""
    for name in names:
        value = fields.get(name)
        if value.__class__ is not str or not value.isascii():
            value = _text(fields, name)
            if value is None:
                continue
        if value := value.strip():
            return value
    return None


def _number(fields: Fields, name: str, alias: str, region: str, role: str) -> str:
    found = _first(fields, name, alias)
    if found is None:
        raise Refusal(400, f"missing {role}: `{name}` (or `{alias}`)", name)
    used, value = found
    try:
        return to_e164(value, region)
    except InvalidNumber as error:
        raise Refusal(400, f"`{used}` is not a usable phone number: {error}", used) from None


def _sender(fields: Fields, region: str) -> Sender:
    found = _first(fields, "from", "sms")
    if found is None:
        raise Refusal(400, "missing sender: `from` (or `sms`)", "from")
    used, value = found
    try:
        return classify_sender(value, region)
    except InvalidNumber as error:
        raise Refusal(400, f"`{used}` is not a usable sender: {error}", used) from None


def _message_id(fields: Fields) -> str | None:
    value = _optional(fields, "message_id")
    if value is not None and not _MESSAGE_ID.fullmatch(value):
        raise Refusal(400, "`message_id` is not a ClickSend message id", "message_id")
    return value


def _timestamp(fields: Fields, name: str) -> datetime | None:
    """Unix seconds as a date; None when absent or not a time (a cosmetic field)."""
    try:
        value = _optional(fields, name)
        return datetime.fromtimestamp(int(value), UTC) if value else None
    except (Refusal, ValueError, OverflowError, OSError):
        return None


def subaccount_of(fields: Fields) -> str | None:
    """The payload's `subaccount_id`, as text; None when absent or not a scalar."""
    try:
        return _optional(fields, "subaccount_id")
    except Refusal:
        return None


def is_receipt(fields: Fields) -> bool:
    """A `message_id` with a status: ClickSend's delivery receipt shape."""
    try:
        return (_optional(fields, "message_id") is not None
                and any(_optional(fields, name) is not None for name in RECEIPT_MARKERS))
    except Refusal:
        return "message_id" in fields and any(name in fields for name in RECEIPT_MARKERS)


# -- the two results -----------------------------------------------------------------------


@dataclass(frozen=True)
class InboundSms:
    """A customer's SMS as ClickSend reported it, numbers already E.164."""

    message: InboundMessage
    dedupe_key: str


def parse_inbound(fields: Fields, region: str) -> InboundSms:
    """An inbound SMS, or Refusal naming the field that is wrong. The sender may be a
    short code or a name (ClickSend does not retry a 4xx: refusing one loses the text)."""
    message_id = _message_id(fields)
    sender = _sender(fields, region)
    recipient = _number(fields, "to", "originalsenderid", region, "recipient (our number)")
    body = _body(fields)
    custom = _metadata(fields, "custom_string", "customstring")
    extra = {}
    for name in ("user_id", "subaccount_id"):
        if (value := _metadata(fields, name)) is not None:
            extra[name] = value
    if custom is not None and our_id(custom) is None:
        extra["custom_string"] = custom
    message = InboundMessage(
        provider=PROVIDER, provider_message_id=message_id, to=recipient, body=body,
        sent_at=_timestamp(fields, "timestamp"),
        reply_to_provider_id=_metadata(fields, "original_message_id",
                                              "originalmessageid"),
        reply_to_id=our_id(custom), extra=extra, sender_type=sender.type,
        # Not a new random id to be replaced: accept_inbound derives it from the key.
        id="", **{"from": sender.address})
    key = f"{PROVIDER}:{message_id}" if message_id else content_key(message)
    return InboundSms(message, key)


def _body(fields: Fields) -> str:
    """`body`, else its alias `message`; empty text is a message too (never `original_body`)."""
    body, message = _text(fields, "body"), _text(fields, "message")
    if body is None and message is None:
        raise Refusal(400, "missing text: `body` (or `message`)", "body")
    return body or message or ""


def _metadata(fields: Fields, *names: str) -> str | None:
    """Metadata: a value that is not text is left out rather than refusing the message."""
    try:
        return _optional(fields, *names)
    except Refusal:
        return None


@dataclass(frozen=True)
class DeliveryReceipt:
    """A delivery receipt for one of our outbound messages."""

    receipt: Receipt
    dedupe_key: str


def parse_receipt(fields: Fields) -> DeliveryReceipt:
    """A receipt, or Refusal. Status 200 sent, 201 delivered, 300 sent (ClickSend retries
    after a temporary failure), 301 failed; any other or no status code is `unknown`."""
    message_id = _message_id(fields)
    if message_id is None:
        raise Refusal(400, "missing `message_id`", "message_id")
    code_text = _optional(fields, "status_code")
    code = int(code_text) if code_text and _STATUS_CODE.fullmatch(code_text) else None
    state = State.UNKNOWN if code is None else _STATES.get(code, State.UNKNOWN)
    status_text = _optional(fields, "status_text")
    error_text = _optional(fields, "error_text")
    error_code = _metadata(fields, "error_code")
    reason = None
    if code == 300:
        reason = f"temporary failure, ClickSend retries: {error_text or status_text or '-'}"
    elif state in (State.FAILED, State.UNKNOWN):
        reason = error_text or status_text
    details: dict[str, Any] = {"source": "clicksend receipt"}
    for name, value in (("status_code", code_text), ("status_text", status_text),
                        ("error_text", error_text),
                        ("message_type", _metadata(fields, "message_type")),
                        ("timestamp", _metadata(fields, "timestamp")),
                        ("timestamp_send", _metadata(fields, "timestamp_send"))):
        if value is not None:
            details[name] = value
    receipt = Receipt(provider=PROVIDER, provider_message_id=message_id, state=state,
                      id_hint=_metadata(fields, "custom_string", "customstring"),
                      reason=reason, error_code=error_code, details=details)
    return DeliveryReceipt(receipt, f"{PROVIDER}:dlr:{message_id}:{code or '-'}")
