"""The read-only v3 endpoints: the account, its subaccounts, its dedicated numbers and the
SMS history, plus the shape of a dedicated-number record."""

from __future__ import annotations

import re
import uuid

import phonenumbers
from aiohttp import web
from phonenumbers.geodata.locale import LOCALE_DATA

from pbxsms.sim.clicksend.api import envelope, int_arg, paginate, success
from pbxsms.sim.clicksend.state import Account, ClickSendState, RecordedRequest
from pbxsms.sim.server import JsonDict, json_response

SUBACCOUNT_PATH = re.compile(r"/v3/subaccounts/([0-9]+)")

# value -> (label, description, name), as validated by the v6 SDK model.
_NUMBER_STATUS: dict[int, tuple[str, str, str]] = {
    0: ("REGISTRATION_NOT_REQUIRED", "Your number is ready to go.", "Ready to use"),
    1: (
        "REGISTRATION_NOT_INITIATED",
        "Your number is unregistered. You will not be able to send messages to certain countries.",
        "Unregistered",
    ),
    2: (
        "REGISTRATION_INITIATED",
        "Your number registration is in progress. Email updates will follow.",
        "Decision Pending",
    ),
    3: (
        "CUST_ACTION_REQUIRED",
        "Action required on your number registration. Please resolve to start using it.",
        "Action Required",
    ),
    4: (
        "REGISTRATION_SUBMITTED",
        "You can send to all countries but may get restricted to some before full registration.",
        "Limited Availability",
    ),
    5: (
        "REGISTERED",
        "Your number is registered and you can start using it immediately.",
        "Registered",
    ),
}


def _country_name(region: str) -> str:
    names = LOCALE_DATA.get(region, {})
    name = names.get("en", "")
    if name.startswith("*"):  # "*xx": the name is stored under language xx
        name = names.get(name[1:], "")
    return name or region


def number_record(
    number: str,
    *,
    country: str | None = None,
    type: str = "sms",
    number_type: str = "longcode",
    price: str = "18.59",
    status: int = 0,
    notes: str | None = None,
) -> JsonDict:
    """A dedicated number, shaped like a `GET /v3/numbers` record."""
    parsed = phonenumbers.parse(number, None)
    region = country or phonenumbers.region_code_for_number(parsed) or "ZZ"
    label, description, name = _NUMBER_STATUS[status]
    return {
        "dedicated_number": phonenumbers.format_number(
            parsed, phonenumbers.PhoneNumberFormat.E164
        ),
        "country": region,
        "price": price,
        "_country_name": _country_name(region),
        "notes": notes,
        "type": type,
        "number_type": number_type,
        "number_category": None,
        "number_guid": str(uuid.uuid4()).upper(),
        "form_submission_id": None,
        "status": {"value": status, "label": label, "description": description, "name": name},
    }


class Directory:
    """Answers what the account, its subaccounts, numbers and history look like."""

    def __init__(self, state: ClickSendState) -> None:
        self.state = state
        self.settings = state.settings

    async def history(
        self, request: web.Request, account: Account, rec: RecordedRequest
    ) -> web.Response:
        """`GET /v3/sms/history`: the messages this account stored, newest first, filtered by
        `date_from`/`date_to` (unix seconds, inclusive) and paginated. A subaccount sees its
        own; the main account sees its user's. The order and `status` "Sent" for a message
        with no receipt yet are undocumented choices."""
        date_from = int_arg(request.query.get("date_from"), 0)
        date_to = int_arg(request.query.get("date_to"), 2**63)
        records = [
            {**record, "status": "Sent"}
            for record in reversed(self.state.sent_messages)
            if record.get("user_id") == account.user_id
            and (account.is_main or record.get("subaccount_id") == account.subaccount_id)
            and date_from <= int(record.get("date") or 0) <= date_to
        ]
        return success("Here are your data.", paginate(request, records))

    async def account(
        self, request: web.Request, account: Account, rec: RecordedRequest
    ) -> web.Response:
        main = self.state.main_account(account)
        settings = self.settings
        data: JsonDict = {
            "user_id": account.user_id,
            "username": main.username,
            "user_email": main.email,
            "active": 1,
            "banned": 0,
            "date_sign_up": self.state.created,
            "balance": "0.000000" if account.state == "nocredit" else settings.balance,
            "user_phone": main.phone_number,
            "reply_to": "originalemail",
            "delivery_to": None,
            "user_first_name": main.first_name,
            "user_last_name": main.last_name,
            "account": 0,
            "account_name": settings.account_name,
            "account_billing_email": main.email,
            "account_billing_mobile": main.phone_number,
            "priority": 0,
            "country": settings.default_country,
            "country_ip": settings.default_country,
            "default_country_sms": settings.default_country,
            "auto_recharge": 0,
            "auto_recharge_amount": "20.00",
            "low_credit_amount": "0.00",
            "setting_unicode_sms": 0,
            "setting_email_sms_subject": 0,
            "setting_fix_sender_id": 0,
            "setting_sms_message_char_limit": 6,
            "old_dashboard": 0,
            "balance_commission": "0.000000",
            "timezone": "Australia/Melbourne",
            "price_rate": 0,
            "private_uploads": 0,
            "fax_quality": 0,
            "setting_sms_hide_your_number": 0,
            "setting_sms_hide_business_name": 0,
            "pricing_variant": 0,
            "on_trial": 0,
            "trial_expiry": None,
            "_currency": settings.currency,
            "_subaccount": account.subaccount_record(),
            "_referrer_chosen": {"id": 8, "name": "Other"},
        }
        return success("Here's your account", data)

    async def subaccounts(
        self, request: web.Request, account: Account, rec: RecordedRequest
    ) -> web.Response:
        records = [a.subaccount_record() for a in self.state.users_accounts(account.user_id)]
        return success("Here are your data.", paginate(request, records))

    async def subaccount(
        self, request: web.Request, account: Account, rec: RecordedRequest
    ) -> web.Response:
        wanted = int(request.path.rsplit("/", 1)[1])
        for a in self.state.users_accounts(account.user_id):
            if a.subaccount_id == wanted:
                return success("Here are your data.", a.subaccount_record())
        return json_response(404, envelope(404, "NOT_FOUND", "Subaccount not found."))

    async def numbers(
        self, request: web.Request, account: Account, rec: RecordedRequest
    ) -> web.Response:
        data = paginate(request, self.state.numbers)
        data["_currency"] = self.settings.currency
        return success("Here are you dedicated numbers.", data)
