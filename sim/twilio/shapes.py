"""Twilio's documented shapes, as the simulator answers them: the message, account,
IncomingPhoneNumber and list-page resources, the error body `{code, message, more_info,
status}` with its HTTP status, the test-credentials magic numbers, segment counts, and
the `X-Twilio-Signature` of what Twilio posts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from email.utils import formatdate
from typing import Any, Literal, get_args

from aiohttp import web

from pbxsms.sim.server import json_response

JsonDict = dict[str, Any]
API = "/2010-04-01"
API_VERSION = "2010-04-01"
MAX_BODY = 1600

# Test credentials' magic numbers (twilio.com/docs/iam/test-credentials).
MAGIC_FROM = {"+15005550001": 21212, "+15005550007": 21606, "+15005550008": 21611}
MAGIC_TO = {"+15005550001": 21211, "+15005550002": 21612, "+15005550003": 21408,
            "+15005550004": 21610, "+15005550009": 21614}
MAGIC_VALID_FROM = "+15005550006"

# Error code → (HTTP status, message template), from twilio.com/docs/api/errors.
ERRORS: dict[int, tuple[int, str]] = {
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource {path} was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "Internal Server Error"),
    20503: (503, "Service Unavailable"),
    21211: (400, "Invalid 'To' Phone Number: {to}"),
    21212: (400, "Invalid From Number (caller ID): {from_}"),
    21408: (400, "Permission to send an SMS has not been enabled for the region indicated "
                 "by the 'To' number: {to}"),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21606: (400, "The From phone number {from_} is not a valid, SMS-capable inbound phone "
                 "number or short code for your account."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21611: (400, "This 'From' number has exceeded the maximum number of queued messages"),
    21612: (400, "The 'To' phone number: {to}, is not currently reachable using the 'From' "
                 "phone number: {from_} via SMS."),
    21614: (400, "'To' number {to} is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
    30003: (400, "Unreachable destination handset"),
    30005: (400, "Unknown destination handset"),
    30006: (400, "Landline or unreachable carrier"),
    30007: (400, "Message filtered"),
}

# Not Twilio's: the misbehaviours the simulator can put into message creations.
FaultKind = Literal["429", "500", "503", "store_then_500", "drop", "delay"]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)

_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)


def sign(token: str, url: str, params: list[tuple[str, str]] | None = None) -> str:
    """Twilio's `X-Twilio-Signature` of a request to `url` with form `params`: base64
    HMAC-SHA1 over the URL and each parameter name, then its values, sorted by name."""
    values: dict[str, set[str]] = {}
    for name, value in params or []:
        values.setdefault(name, set()).add(value)
    data = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def segments(body: str) -> int:
    """SMS segments: 160/153 GSM-7 characters, else 70/67 UCS-2 (extension characters
    counted once: close enough for a simulator)."""
    single, multi = (160, 153) if all(c in _GSM7 for c in body) else (70, 67)
    return 1 if len(body) <= single else -(-len(body) // multi)


def new_sid(prefix: str) -> str:
    """A SID: two letters and 32 hex digits."""
    return prefix + uuid.uuid4().hex


def rfc2822(at: float) -> str:
    """Twilio's date format, e.g. `Thu, 30 Jul 2015 20:12:31 +0000`."""
    return formatdate(at, usegmt=False).replace("-0000", "+0000")


def e164(number: str) -> bool:
    return number.startswith("+") and number[1:].isdigit() and 8 <= len(number) <= 16


def message(account_sid: str, sid: str, from_: str, to: str, body: str, status: str,
            at: float, direction: str = "outbound-api") -> JsonDict:
    """A message resource, every documented field present."""
    uri = f"{API}/Accounts/{account_sid}/Messages/{sid}"
    return {
        "account_sid": account_sid, "api_version": API_VERSION, "body": body,
        "date_created": rfc2822(at),
        "date_sent": None if status in ("queued", "accepted") else rfc2822(at),
        "date_updated": rfc2822(at), "direction": direction, "error_code": None,
        "error_message": None, "from": from_, "messaging_service_sid": None,
        "num_media": "0", "num_segments": str(segments(body)), "price": None,
        "price_unit": "USD", "sid": sid, "status": status,
        "subresource_uris": {"media": f"{uri}/Media.json"}, "to": to, "uri": f"{uri}.json",
    }


def account(account_sid: str, auth_token: str, friendly_name: str, status: str, kind: str,
            created: float) -> JsonDict:
    """The account resource (it carries the auth token, as Twilio's does)."""
    uri = f"{API}/Accounts/{account_sid}"
    return {
        "auth_token": auth_token, "date_created": rfc2822(created),
        "date_updated": rfc2822(created), "friendly_name": friendly_name,
        "owner_account_sid": account_sid, "sid": account_sid, "status": status,
        "subresource_uris": {"messages": f"{uri}/Messages.json"}, "type": kind,
        "uri": f"{uri}.json",
    }


def incoming_number(account_sid: str, number: str, sms_url: str, sms_method: str,
                    at: float) -> JsonDict:
    """An IncomingPhoneNumber resource, with its "A MESSAGE COMES IN" webhook."""
    sid = new_sid("PN")
    return {
        "account_sid": account_sid, "api_version": API_VERSION,
        "capabilities": {"fax": False, "mms": True, "sms": True, "voice": True},
        "date_created": rfc2822(at), "friendly_name": number, "phone_number": number,
        "sid": sid, "sms_application_sid": "", "sms_fallback_method": "POST",
        "sms_fallback_url": "", "sms_method": sms_method, "sms_url": sms_url,
        "status": "in-use",
        "uri": f"{API}/Accounts/{account_sid}/IncomingPhoneNumbers/{sid}.json",
    }


def page(key: str, uri: str, items: list[JsonDict], size: int) -> JsonDict:
    """A list page (the first; the simulator never needs a second)."""
    return {key: items, "end": max(len(items) - 1, 0),
            "first_page_uri": f"{uri}?PageSize={size}&Page=0", "next_page_uri": None,
            "page": 0, "page_size": size, "previous_page_uri": None, "start": 0,
            "uri": f"{uri}?PageSize={size}&Page=0"}


def error(code: int, headers: dict[str, str] | None = None, **values: str) -> web.Response:
    """Twilio's error answer: its HTTP status and `{code, message, more_info, status}`."""
    status, template = ERRORS[code]
    text = template.format(**{"to": "", "from_": "", "path": "", **values})
    return json_response(status, {"code": code, "message": text,
                                  "more_info": f"https://www.twilio.com/docs/errors/{code}",
                                  "status": status}, headers)
