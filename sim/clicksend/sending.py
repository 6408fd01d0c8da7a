"""`POST /v3/sms/send`: recipients checked and normalised, each message priced by its
billable parts, and the per-message statuses ClickSend answers."""

from __future__ import annotations

import math
import re
import time
import uuid
from decimal import Decimal
from typing import Any

import phonenumbers
from aiohttp import web
from phonenumbers import PhoneNumber
from phonenumbers import carrier as pn_carrier

from pbxsms.sim.clicksend.api import MAX_MESSAGES_PER_REQUEST, bad_request, int_arg, success
from pbxsms.sim.clicksend.state import Account, ClickSendState, RecordedRequest
from pbxsms.sim.server import JsonDict, json_response

# Legacy doc, "Testing": accepted, never delivered, never charged.
TEST_NUMBERS = frozenset(
    {
        "+61411111111",
        "+61422222222",
        "+61433333333",
        "+61444444444",
        "+14055555555",
        "+14055555666",
        "+447777777777",
        "+8615555555555",
    }
)

_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")
_NUMERIC_SENDER = re.compile(r"\+?[0-9]{3,15}")
_ALPHA_SENDER = re.compile(r"[A-Za-z0-9]{3,11}")


def message_parts(body: str) -> int:
    """Billable SMS parts: 160/153 GSM-7 or 70/67 UCS-2 characters, line breaks count twice."""
    text = body.replace("\r\n", "\n")
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text):
        units = sum(2 if c in _GSM_EXTENDED or c == "\n" else 1 for c in text)
        single, multi = 160, 153
    else:
        units = sum(2 if ord(c) > 0xFFFF or c == "\n" else 1 for c in text)
        single, multi = 70, 67
    return 1 if units <= single else math.ceil(units / multi)


def _custom_string(msg: JsonDict) -> str:
    value = msg.get("custom_string")
    return "" if value is None else str(value)


def _rejected(message_id: str, msg: JsonDict, status: str) -> JsonDict:
    # Live probes: rejected messages carry only these keys, and schedule is "".
    def text(key: str) -> str:
        value = msg.get(key)
        return "" if value is None else str(value)

    return {
        "to": text("to"),
        "body": text("body"),
        "from": text("from"),
        "schedule": "",
        "message_id": message_id,
        "custom_string": _custom_string(msg),
        "is_shared_system_number": False,
        "status": status,
    }


class Sending:
    """Accepts or rejects each message of a send call and records what was queued.

    Test numbers are accepted with `message_parts` 0 and price "0.0000" (never delivered, never
    charged) but still appear in `sent_messages`, since the client was told they were queued.
    """

    def __init__(self, state: ClickSendState) -> None:
        self.state = state
        self.settings = state.settings
        self._throttle: dict[tuple[int, str, str], float] = {}

    def reset(self) -> None:
        self._throttle.clear()

    async def send(
        self, request: web.Request, account: Account, rec: RecordedRequest
    ) -> web.Response:
        body = rec.body
        if not isinstance(body, dict):
            return json_response(400, bad_request(None))
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            error = {"messages": "The messages field is required."}
            return json_response(400, bad_request(error))
        if len(messages) > MAX_MESSAGES_PER_REQUEST:
            limit = MAX_MESSAGES_PER_REQUEST
            error = {"messages": f"The messages may not have more than {limit} items."}
            return json_response(400, bad_request(error))

        now = int(time.time())
        results = [self._process_message(m, account, now) for m in messages]
        queued = [r for r in results if r["status"] == "SUCCESS"]
        total = sum((Decimal(r["message_price"]) for r in queued), Decimal(0))
        rec.messages = results
        self.state.sent_messages.extend(queued)
        data = {
            "total_price": float(total) if total else 0,
            "total_count": len(results),
            "queued_count": len(queued),
            "messages": results,
            "_currency": self.settings.currency,
            "blocked_count": sum(r["status"] == "COUNTRY_NOT_ENABLED" for r in results),
        }
        return success("Messages queued for delivery.", data)

    def _process_message(self, msg: Any, account: Account, now: int) -> JsonDict:
        message_id = str(uuid.uuid4()).upper()  # assigned even to rejected messages
        if not isinstance(msg, dict):
            return _rejected(message_id, {}, "MISSING_REQUIRED_FIELDS")
        to_raw, body = msg.get("to"), msg.get("body")
        country = msg.get("country") if isinstance(msg.get("country"), str) else None
        if to_raw is None and msg.get("list_id") is not None:
            return _rejected(message_id, msg, "NOT_ENOUGH_PERMISSION_TO_LIST_ID")
        if to_raw is None or body is None:
            return _rejected(message_id, msg, "MISSING_REQUIRED_FIELDS")
        found = self.parse(to_raw, country)
        to, parsed = found if found is not None else (None, None)
        forced = self.state.forced_statuses.get(to or str(to_raw))
        if forced is not None and forced != "SUCCESS":
            return _rejected(message_id, msg, forced)
        if forced is None or to is None or not isinstance(body, str):
            status = self._validate(msg, to, account)
            if status != "SUCCESS":
                return _rejected(message_id, msg, status)
        assert to is not None and parsed is not None and isinstance(body, str)  # by _validate
        if self.settings.throttle_seconds is not None:
            self._throttle[(account.user_id, to, body)] = time.monotonic()

        region = phonenumbers.region_code_for_number(parsed) or (
            phonenumbers.region_code_for_country_code(parsed.country_code or 0)
        )
        sender, shared = self._sender_for(msg.get("from"))
        parts = 0 if to in TEST_NUMBERS else message_parts(body)
        schedule = msg.get("schedule")
        return {
            "direction": "out",
            "date": now,
            "to": to,
            "body": body,
            "from": sender,
            "schedule": int_arg(str(schedule), now) if schedule not in (None, "", 0, "0") else now,
            "message_id": message_id,
            "message_parts": parts,
            "message_price": f"{self.settings.price_per_part * parts:.4f}",
            "from_email": msg.get("from_email") if isinstance(msg.get("from_email"), str) else None,
            "list_id": None,
            "custom_string": _custom_string(msg),
            "contact_id": None,
            "user_id": account.user_id,
            "subaccount_id": account.subaccount_id,
            "is_shared_system_number": shared,
            "country": region,
            "carrier": pn_carrier.name_for_number(parsed, "en"),
            "status": "SUCCESS",
        }

    def _validate(self, msg: JsonDict, to: str | None, account: Account) -> str:
        body = msg.get("body")
        if account.state == "nocredit":
            return "INSUFFICIENT_CREDIT"
        if not isinstance(body, str) or not body.strip():
            return "EMPTY_MESSAGE"
        if to is None:
            return "INVALID_RECIPIENT"
        schedule = msg.get("schedule")
        if schedule not in (None, "") and not (
            (isinstance(schedule, int) and not isinstance(schedule, bool) and schedule >= 0)
            or (isinstance(schedule, str) and schedule.isdigit())
        ):
            return "INVALID_SCHEDULE"
        sender = msg.get("from")
        if sender not in (None, "") and not (
            isinstance(sender, str)
            and (
                _NUMERIC_SENDER.fullmatch(sender)
                or (_ALPHA_SENDER.fullmatch(sender) and not sender.isdigit())
            )
        ):
            return "INVALID_SENDER_ID"
        enabled = self.settings.enabled_countries
        if enabled is not None:
            parsed = phonenumbers.parse(to, None)
            if phonenumbers.region_code_for_number(parsed) not in enabled:
                return "COUNTRY_NOT_ENABLED"
        window = self.settings.throttle_seconds
        if window is not None:
            last = self._throttle.get((account.user_id, to, body))
            if last is not None and time.monotonic() - last < window:
                return "THROTTLED"
        return "SUCCESS"

    def _sender_for(self, sender: Any) -> tuple[str, bool]:
        """(from, is_shared_system_number): no sender means a dedicated number, else the pool."""
        if isinstance(sender, str) and sender:
            return sender, False
        if self.state.numbers:
            return str(self.state.numbers[0]["dedicated_number"]), False
        return self.settings.shared_number, True

    def normalise(self, raw: Any, country: str | None) -> str | None:
        """E.164 form of a recipient, or None when it is not a usable phone number."""
        found = self.parse(raw, country)
        return found[0] if found is not None else None

    def parse(self, raw: Any, country: str | None) -> tuple[str, PhoneNumber] | None:
        """(E.164, parsed) of a recipient, or None when it is not a usable phone number;
        parsed once per message (parsing was most of a 1000-message call's time)."""
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            return None
        region = (country or self.settings.default_country).upper()
        try:
            parsed = phonenumbers.parse(str(raw), region)
        except phonenumbers.NumberParseException:
            return None
        check = (
            phonenumbers.is_valid_number
            if self.settings.strict_numbers
            else phonenumbers.is_possible_number
        )
        if not check(parsed):
            return None
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), parsed
