"""The ClickSend simulator: its parts (state, gate, sending, directory, webhooks, controls)
put together behind one aiohttp server, and the `pbxsms clicksend simulator` runner."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from aiohttp import web

from pbxsms.sim.clicksend.api import (
    ACCOUNT_PATH,
    HISTORY_PATH,
    NUMBERS_PATH,
    SEND_PATH,
    SUBACCOUNTS_PATH,
    USD,
)
from pbxsms.sim.clicksend.controls import ClickSendControls
from pbxsms.sim.clicksend.directory import SUBACCOUNT_PATH, Directory, number_record
from pbxsms.sim.clicksend.gate import FAULT_KINDS, Endpoint, Fault, FaultKind, Gate
from pbxsms.sim.clicksend.mms import MEDIA_PREFIX, MMS_SEND_PATH, UPLOADS_PATH, Mms
from pbxsms.sim.clicksend.sending import Sending
from pbxsms.sim.clicksend.state import (
    ENDPOINT_RATE_LIMITS,
    Account,
    ClickSendState,
    RecordedRequest,
    Settings,
)
from pbxsms.sim.clicksend.webhooks import Webhooks
from pbxsms.sim.server import ControlHandler, JsonDict, SimulatedService, check_fault_kind


class ClickSendSimulator(SimulatedService):
    """In-memory ClickSend: accounts, dedicated numbers, sent messages and injectable faults."""

    def __init__(
        self,
        accounts: Iterable[tuple[str, str]] = (),
        *,
        user_id: int = 463662,
        account_name: str = "pbxsms simulator",
        default_country: str = "US",
        currency: Mapping[str, str] | None = None,
        balance: str = "100.000000",
        price_per_part: str = "0.0792",
        shared_number: str = "+61481070000",
        throttle_seconds: float | None = None,
        enabled_countries: Iterable[str] | None = None,
        strict_numbers: bool = False,
        rate_limit: int = 6000,
        endpoint_rate_limits: Mapping[str, int] | None = None,
        enforce_rate_limits: bool = False,
        include_test_accounts: bool = True,
        push_timeout: float = 10.0,
    ) -> None:
        super().__init__(push_timeout)
        self.settings = Settings(
            user_id=user_id,
            account_name=account_name,
            default_country=default_country.upper(),
            currency=dict(currency or USD),
            balance=balance,
            price_per_part=Decimal(price_per_part),
            shared_number=shared_number,
            throttle_seconds=throttle_seconds,
            enabled_countries=(
                None if enabled_countries is None else {c.upper() for c in enabled_countries}
            ),
            strict_numbers=strict_numbers,
            rate_limit=rate_limit,
            endpoint_rate_limits=dict(endpoint_rate_limits or ENDPOINT_RATE_LIMITS),
            enforce_rate_limits=enforce_rate_limits,
        )
        self.state = ClickSendState(self.settings)
        self.gate = Gate(self.state, self.pause)
        self.sending = Sending(self.state)
        self.directory = Directory(self.state)
        self.webhooks = Webhooks(self.state, lambda: self.session)
        self.mms = Mms(self.state, lambda: self.base_url)
        self.controls = ClickSendControls(self)
        # What the parts offer as they are.
        self.add_account = self.state.add_account
        self.push_inbound = self.webhooks.push_inbound
        self.push_receipt = self.webhooks.push_receipt
        self.add_media = self.mms.add_media
        for username, api_key in accounts:
            self.add_account(username, api_key)
        if include_test_accounts:
            self.state.add_test_accounts()

    # ---- what tests look at ----------------------------------------------------------------

    @property
    def user_id(self) -> int:
        return self.settings.user_id

    @property
    def accounts(self) -> dict[str, Account]:
        return self.state.accounts

    @property
    def numbers(self) -> list[JsonDict]:
        return self.state.numbers

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.state.requests

    @property
    def send_requests(self) -> list[RecordedRequest]:
        return self.state.send_requests

    @property
    def sent_messages(self) -> list[JsonDict]:
        return self.state.sent_messages

    @property
    def forced_statuses(self) -> dict[str, str]:
        return self.state.forced_statuses

    @property
    def faults(self) -> list[Fault]:
        return self.gate.faults.queued

    # ---- configuration ---------------------------------------------------------------------

    def add_number(
        self,
        number: str,
        *,
        country: str | None = None,
        type: str = "sms",
        number_type: str = "longcode",
        price: str = "18.59",
        status: int = 0,
        notes: str | None = None,
    ) -> JsonDict:
        """Add a dedicated number, shaped like a `GET /v3/numbers` record."""
        record = number_record(
            number,
            country=country,
            type=type,
            number_type=number_type,
            price=price,
            status=status,
            notes=notes,
        )
        self.state.numbers.append(record)
        return record

    def force_status(self, number: str, status: str | None) -> None:
        """Make every message to `number` get `status` (None removes the override)."""
        key = self.sending.normalise(number, None) or number
        if status is None:
            self.state.forced_statuses.pop(key, None)
        else:
            self.state.forced_statuses[key] = status

    def fail_next(
        self,
        kind: FaultKind,
        count: int = 1,
        *,
        retry_after: int = 1,
        delay: float = 0.0,
        endpoint: str | None = SEND_PATH,
    ) -> None:
        """Queue `count` faults of `kind` for the next matching requests.

        `store_then_500` processes and records the send, then answers 500 (the ambiguous
        case); `drop` closes the connection before reading anything; `delay` waits `delay`
        seconds and then answers normally, so a client that timed out still gets it sent.
        """
        check_fault_kind(kind, FAULT_KINDS)
        self.gate.faults.queued.extend(
            Fault(kind=kind, retry_after=retry_after, delay=delay, endpoint=endpoint)
            for _ in range(count)
        )

    def reset(self) -> None:
        """Forget recorded traffic, queued faults and throttling state; keep configuration."""
        self.state.requests.clear()
        self.state.sent_messages.clear()
        self.gate.faults.clear()
        self.gate.rates.reset()
        self.sending.reset()
        self.mms.reset()

    # ---- HTTP --------------------------------------------------------------------------------

    def create_app(self) -> web.Application:
        return create_app(self)

    def control_routes(self) -> dict[tuple[str, str], ControlHandler]:
        return self.controls.routes()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Single entry point, so a wrong method gets ClickSend's 404 rather than a 405."""
        if request.path.startswith("/_sim/"):
            return await self.control(request)
        if request.method == "GET" and request.path.startswith(MEDIA_PREFIX):
            return await self.mms.serve_media(request)  # the media host (S3), no API auth
        return await self.gate.serve(request, self._endpoint(request.method, request.path))

    def _endpoint(self, method: str, path: str) -> Endpoint | None:
        routes: dict[tuple[str, str], Endpoint] = {
            ("POST", SEND_PATH): self._send,
            ("POST", MMS_SEND_PATH): self.mms.send,
            ("POST", UPLOADS_PATH): self.mms.upload,
            ("GET", HISTORY_PATH): self.directory.history,
            ("GET", ACCOUNT_PATH): self.directory.account,
            ("GET", SUBACCOUNTS_PATH): self.directory.subaccounts,
            ("GET", NUMBERS_PATH): self.directory.numbers,
        }
        endpoint = routes.get((method, path.rstrip("/") or "/"))
        if endpoint is None and method == "GET" and SUBACCOUNT_PATH.fullmatch(path):
            endpoint = self.directory.subaccount
        return endpoint

    async def _send(
        self, request: web.Request, account: Account, rec: RecordedRequest
    ) -> web.Response:
        """`POST /v3/sms/send`; a subclass may wrap it (the benchmark times accepted sends)."""
        return await self.sending.send(request, account, rec)


def create_app(sim: ClickSendSimulator) -> web.Application:
    # 1000 messages with long bodies exceed aiohttp's 1 MiB default.
    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", sim.handle)
    return app


async def serve_forever(
    host: str,
    port: int,
    username: str,
    api_key: str,
    *,
    subaccount_id: int | None = None,
    numbers: Iterable[str] = (),
) -> None:
    """Run a simulator with one account until cancelled (for `pbxsms clicksend simulator`)."""
    sim = ClickSendSimulator()
    sim.add_account(username, api_key, subaccount_id)
    for number in numbers:
        sim.add_number(number)
    url = await sim.start(host, port)
    print(f"ClickSend simulator on {url} (API user {username!r}); control API at {url}/_sim/")
    print(f"Point a gateway at it with CLICKSEND_BASE_URL={url}", flush=True)
    await sim.serve_until_cancelled()
