"""What one simulated ClickSend holds: its settings, API accounts, dedicated numbers, the
requests it was sent and the messages it accepted, and the look-ups over them."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from pbxsms.sim.clicksend.api import ACCOUNT_PATH, SEND_PATH, USD
from pbxsms.sim.server import JsonDict

AccountState = Literal["active", "nocredit", "notactive", "banned"]

# Probes saw 20/minute on /v3/account and 6000 elsewhere.
ENDPOINT_RATE_LIMITS = {ACCOUNT_PATH: 20}
# Legacy doc test accounts `nocredit`, `notactive` and `banned` all share this key.
TEST_ACCOUNT_KEY = "D83DED51-9E35-4D42-9BB9-0E34B7CA85AE"


@dataclass
class Account:
    """An API credential pair; `user_id` groups subaccounts of one ClickSend user."""

    username: str
    api_key: str
    subaccount_id: int
    user_id: int
    email: str
    first_name: str = "Sim"
    last_name: str = "User"
    phone_number: str | None = None
    state: AccountState = "active"
    is_main: bool = False

    def subaccount_record(self) -> JsonDict:
        """The `GET /v3/subaccounts` record, live api_key included, like the real one."""
        return {
            "subaccount_id": self.subaccount_id,
            "api_username": self.username,
            "email": self.email,
            "phone_number": self.phone_number,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "api_key": self.api_key,
            "access_smpp": 0,
            "access_users": 1,
            "access_billing": 1,
            "access_reporting": 1,
            "access_contacts": 1,
            "access_settings": 1,
            "access_sms": 1,
            "access_email": 1,
            "access_voice": 1,
            "access_fax": 1,
            "access_post": 1,
            "access_reseller": 0,
            "access_global_sending": 1,
            "access_mms": 1,
            "hide_pricing": 0,
            "share_campaigns": 0,
            "notes": None,
            "is_main": int(self.is_main),
            "sign_up_type": None,
        }


@dataclass
class RecordedRequest:
    """One request to `/v3/*`. `status` is None when the connection was dropped."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None
    status: int | None = None
    fault: str | None = None
    messages: list[JsonDict] = field(default_factory=list)
    received_at: float = field(default_factory=time.time)

    @property
    def authorization(self) -> str | None:
        return self.headers.get("Authorization")

    @property
    def custom_strings(self) -> list[Any]:
        msgs = self.body.get("messages") if isinstance(self.body, dict) else None
        if not isinstance(msgs, list):
            return []
        return [m.get("custom_string") for m in msgs if isinstance(m, dict)]


@dataclass
class Settings:
    """How this ClickSend behaves; the `/_sim/config` control changes some while it runs."""

    user_id: int = 463662
    account_name: str = "pbxsms simulator"
    default_country: str = "US"
    currency: JsonDict = field(default_factory=lambda: dict(USD))
    balance: str = "100.000000"
    price_per_part: Decimal = Decimal("0.0792")
    shared_number: str = "+61481070000"
    # Off by default: "same body to same recipient shortly after" -> THROTTLED.
    throttle_seconds: float | None = None
    enabled_countries: set[str] | None = None
    # is_possible_number by default, so made-up numbers such as +1555... are accepted.
    strict_numbers: bool = False
    rate_limit: int = 6000
    endpoint_rate_limits: Mapping[str, int] = field(
        default_factory=lambda: dict(ENDPOINT_RATE_LIMITS)
    )
    enforce_rate_limits: bool = False


class ClickSendState:
    """Accounts, numbers and recorded traffic, shared by the parts of the simulator."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.accounts: dict[str, Account] = {}
        self.numbers: list[JsonDict] = []
        self.requests: list[RecordedRequest] = []
        self.sent_messages: list[JsonDict] = []
        self.forced_statuses: dict[str, str] = {}
        self.created = int(time.time())
        self._next_subaccount_id = 526569

    def add_account(
        self,
        username: str,
        api_key: str,
        subaccount_id: int | None = None,
        *,
        email: str | None = None,
        user_id: int | None = None,
        state: AccountState = "active",
        first_name: str = "Sim",
        last_name: str = "User",
        phone_number: str | None = None,
    ) -> Account:
        """Add (or replace) a credential; the first account of a user is its main account."""
        uid = self.settings.user_id if user_id is None else user_id
        if subaccount_id is None:
            subaccount_id = self._next_subaccount_id
        self._next_subaccount_id = max(self._next_subaccount_id, subaccount_id) + 1
        old = self.accounts.get(username)
        is_main = (old.is_main if old else False) or not any(
            a.user_id == uid for a in self.accounts.values()
        )
        account = Account(
            username=username,
            api_key=api_key,
            subaccount_id=subaccount_id,
            user_id=uid,
            email=email or f"{username.lower()}@example.com",
            first_name=first_name,
            last_name=last_name,
            phone_number=phone_number,
            state=state,
            is_main=is_main,
        )
        self.accounts[username] = account
        return account

    def add_test_accounts(self) -> None:
        """The legacy doc's test accounts, as separate users so they never show up in the
        main user's subaccount list."""
        states: tuple[AccountState, ...] = ("nocredit", "notactive", "banned")
        for offset, state in enumerate(states, start=1):
            self.add_account(state, TEST_ACCOUNT_KEY, user_id=offset, state=state)

    def users_accounts(self, user_id: int) -> Iterable[Account]:
        return (a for a in self.accounts.values() if a.user_id == user_id)

    def main_account(self, account: Account) -> Account:
        """The main account of `account`'s user (itself when it has none)."""
        return next((a for a in self.users_accounts(account.user_id) if a.is_main), account)

    @property
    def send_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == SEND_PATH and r.method == "POST"]

    def find_sent(
        self, message_id: str | None, recipient: str | None, sender: str | None
    ) -> JsonDict | None:
        """The last message sent with `message_id`, else to `recipient` (from `sender`)."""
        for record in reversed(self.sent_messages):
            if message_id is not None:
                if record.get("message_id") == message_id:
                    return record
            elif (
                recipient is not None
                and record.get("to") == recipient
                and (sender is None or record.get("from") == sender)
            ):
                return record
        # A reply from a number we wrote to from another sender still belongs to that thread.
        if message_id is None and recipient is not None and sender is not None:
            return self.find_sent(None, recipient, None)
        return None

    def owner_of(self, record: JsonDict | None) -> tuple[int, int]:
        """(user_id, subaccount_id) for a sent record, else the main account's."""
        user_id = self.settings.user_id
        if record is not None and "subaccount_id" in record:
            return int(record.get("user_id") or user_id), int(record["subaccount_id"])
        for account in self.users_accounts(user_id):
            return account.user_id, account.subaccount_id
        return user_id, 0
