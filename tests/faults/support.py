"""The fault suite's real parts: gateways as processes, the carriers' retrying webhooks
(ClickSend's, and Twilio's signed by its simulator), counting what reached people, and the
results table of docs/reliability.md."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from pbxsms.bus.embedded import EMBEDDED_DIR, embedded_url
from pbxsms.sim.freeswitch import FakeFreeSwitch
from pbxsms.sim.mobileapp import MobileAppSimulator
from pbxsms.sim.twilio import TwilioSimulator
from tests.helpers import free_port, write_env
from tests.procs import Proc, alive, nats_server_children
from tests.support.delivery import APP_TOKEN, HOOK_TOKEN, ORG, SENDER
from tests.support.smtp import SmtpServer

# `make test-faults` sets it: the full-size scenarios (2,000 webhooks, 10,000 requests).
FULL = os.environ.get("FAULTS_FULL") == "1"

NUMBER = "+61411111111"  # ours, routed to extension 201 and an email address
CUSTOMER = "+61422222222"
MAILBOX = "desk@example.com"
SUBACCOUNT = "745158"
# Twilio signs the URL it calls: the gateway's public one, reached as through a TLS proxy.
PUBLIC_URL = "https://sms.example.com"
TWILIO_SID = "AC" + "5eed" * 8
# The carriers whose webhooks the scenarios can post (parametrized `carrier`).
CARRIERS = ("clicksend", "twilio")
# Every secret the gateway is configured with: none may appear in its logs.
SECRETS = {
    "CLICKSEND_API_KEY": "cs-api-key-7f3a9c",
    "CLICKSEND_WEBHOOK_TOKEN": "cs-hook-token-51bd2e",
    "RINGOTEL_API_TOKEN": APP_TOKEN,
    "RINGOTEL_WEBHOOK_TOKEN": HOOK_TOKEN,
    "PBXSMS_API_TOKEN": "api-token-c0ffee42",
    "TWILIO_AUTH_TOKEN": "tw-auth-token-9d41c7",
}
MAX_IN_FLIGHT = 16


def gateway_toml(bus: str = "", sip: bool = False, carrier: str = "clicksend") -> str:
    """The TOML every fault gateway runs: one number on `carrier` to app and email (and
    its SIP phones with `sip`), fast retries."""
    return f"""
[plugins]
enabled = ["{carrier}", "email", "mobileapp"{', "freeswitch"' if sip else ''}]

[bus]
backoff_initial = "100ms"
backoff_max = "1s"
max_deliver = 20
max_in_flight = {MAX_IN_FLIGHT}
# A crash's unacknowledged deliveries come back after this: short, so tests are quick.
ack_wait = "3s"
{bus}

[[numbers]]
number = "{NUMBER}"
provider = "{carrier}"
extension = "201"
domain = "pbx.example.com"
email = ["{MAILBOX}"]
mobileapp_org = "{ORG}"
sip = {"true" if sip else "false"}
"""


def fault_env(app: MobileAppSimulator, smtp: SmtpServer, **more: str) -> dict[str, str]:
    return {"RINGOTEL_API_URL": app.api_url, "PBXSMS_SMTP_HOST": "127.0.0.1",
            "PBXSMS_SMTP_PORT": str(smtp.port), "PBXSMS_SMTP_FROM": SENDER,
            "PBXSMS_SMTP_TIMEOUT": "5", "CLICKSEND_USERNAME": "pbx-user",
            "CLICKSEND_SUBACCOUNT_ID": SUBACCOUNT, "TWILIO_ACCOUNT_SID": TWILIO_SID,
            "PBXSMS_PUBLIC_URL": PUBLIC_URL, **SECRETS, **more}


class GatewayProc:
    """`pbxsms serve` in its own work dir, restartable on the same ports; one log for all
    of its lives (`log`), so a test can search everything it ever wrote."""

    def __init__(self, workdir: Path, toml: str, env: dict[str, str],
                 nats_url: str | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        (workdir / "pbxsms.toml").write_text(toml)
        values = {"PBXSMS_DATA_DIR": str(workdir / "var"), **env}
        if nats_url:
            values["NATS_URL"] = nats_url
        write_env(workdir / ".env", **values)
        self.http_port, self.nats_port = free_port(), free_port()
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def log(self) -> Path:
        return self.workdir / "serve.log"

    @property
    def embedded_nats_url(self) -> str:
        """Its embedded NATS server's URL, with the secret it generated in its data dir."""
        return embedded_url(self.nats_port, self.workdir / "var" / EMBEDDED_DIR)

    def start(self) -> None:
        self.proc = Proc(self.workdir, self.http_port, self.nats_port,
                         {"PBXSMS_CONFIG": str(self.workdir / "pbxsms.toml")})
        self.proc.wait_ready(60)

    def embedded_nats(self) -> set[int]:
        assert self.proc is not None
        return nats_server_children(self.proc.popen.pid)

    def kill(self, with_nats: bool) -> None:
        """SIGKILL: no drain, no goodbye. `with_nats` kills its embedded server first,
        also by SIGKILL, so it cannot flush or stop gracefully either."""
        assert self.proc is not None
        children = self.embedded_nats()
        if with_nats:
            assert children, "an embedded nats-server runs"
            for pid in children:
                os.kill(pid, signal.SIGKILL)
        self.proc.popen.kill()
        self.proc.popen.wait(10)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.popen.poll() is None:
            self.proc.stop(signal.SIGTERM, timeout=20)
        self.proc = None

    def assert_log_clean(self, bodies: Iterable[str]) -> None:
        """No configured secret and no message body in anything the process wrote."""
        text = self.log.read_text(errors="replace")
        for name, secret in SECRETS.items():
            assert secret not in text, f"{name} appears in the log"
        leaked = [body for body in bodies if body in text]
        assert not leaked, f"{len(leaked)} message bodies in the log, e.g. {leaked[:3]}"


def inbound_payload(body: str, message_id: str, to: str = NUMBER,
                    subaccount: str = SUBACCOUNT) -> dict[str, Any]:
    """ClickSend's `webhook_type=json` inbound payload (docs reference §3(a))."""
    return {"originalsenderid": to, "body": body, "message": body, "sms": CUSTOMER,
            "from": CUSTOMER, "to": to, "timestamp": int(time.time()),
            "message_id": message_id, "original_message_id": "", "original_body": "",
            "user_id": 304497, "subaccount_id": int(subaccount), "custom_string": ""}


@dataclass
class Webhook:
    """One inbound SMS as ClickSend holds it: posted until it is answered 200."""

    body: str
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()).upper())
    answers: list[int] = field(default_factory=list)  # 0: no answer (connection failed)

    @property
    def accepted(self) -> bool:
        return bool(self.answers) and self.answers[-1] == 200


class Poster:
    """Posts webhooks as a carrier that retries does: a 503 answer (or none) is posted
    again later, until the carrier's request counts as taken."""

    def __init__(self, concurrency: int = 16, retry_delay: float = 0.2) -> None:
        self.concurrency = concurrency
        self.retry_delay = retry_delay
        self.accepted = 0

    async def post(self, session: aiohttp.ClientSession, hook: Webhook,
                   to: str = NUMBER) -> int:
        """One attempt to our number `to`: the answer's status (raises when none came)."""
        raise NotImplementedError

    def taken(self, hook: Webhook) -> bool:
        """Whether the answers so far mean the carrier stops posting it."""
        return hook.answers[-1] == 200

    async def post_once(self, session: aiohttp.ClientSession, hook: Webhook) -> int:
        try:
            status = await self.post(session, hook)
        except (aiohttp.ClientError, OSError, TimeoutError):
            status = 0
        hook.answers.append(status)
        if self.taken(hook):
            self.accepted += 1
        return status

    async def deliver(self, hooks: list[Webhook], deadline: float = 300.0) -> None:
        """Post every webhook until each was taken (fails at the deadline)."""
        queue: asyncio.Queue[Webhook] = asyncio.Queue()
        for hook in hooks:
            queue.put_nowait(hook)
        end = time.monotonic() + deadline

        async def worker(session: aiohttp.ClientSession) -> None:
            while not queue.empty():
                hook = queue.get_nowait()
                await self.post_once(session, hook)
                while not self.taken(hook):
                    assert hook.answers[-1] in (0, 503), (
                        f"webhook answered {hook.answers[-1]}, not 200 or 503")
                    if time.monotonic() > end:
                        raise AssertionError(f"{hook.message_id} never taken")
                    await asyncio.sleep(self.retry_delay)
                    await self.post_once(session, hook)

        connector = aiohttp.TCPConnector(limit=self.concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.gather(*(worker(session) for _ in range(self.concurrency)))


class ClickSendPoster(Poster):
    """ClickSend's inbound webhooks (JSON, the token in the URL): every answer but 200 is
    retried."""

    def __init__(self, *urls: str, concurrency: int = 16, retry_delay: float = 0.2) -> None:
        super().__init__(concurrency, retry_delay)
        # Several gateways: a load balancer's view, each attempt going to the next one.
        token = SECRETS["CLICKSEND_WEBHOOK_TOKEN"]
        self.urls = [f"{url}/webhook/clicksend/sms?token={token}" for url in urls]
        self._turn = 0

    async def post(self, session: aiohttp.ClientSession, hook: Webhook,
                   to: str = NUMBER) -> int:
        self._turn += 1
        url = self.urls[self._turn % len(self.urls)]
        async with session.post(url, json=inbound_payload(hook.body, hook.message_id, to),
                                timeout=aiohttp.ClientTimeout(total=10)) as response:
            await response.read()
            return response.status


class TwilioPoster(Poster):
    """Twilio's "A MESSAGE COMES IN" webhooks, posted by the Twilio simulator: a form
    signed for the public URL, reaching the gateway as through a TLS proxy. Twilio tries a
    URL again only with connection overrides (`#rc=`), resending the same request; that is
    the carrier modelled here. The gateway refuses a request it already stored with 409
    (a replay): after an attempt that got no answer (the gateway died after storing it)
    that answer means taken, and nothing is lost."""

    def __init__(self, twilio: TwilioSimulator, gateway_url: str, concurrency: int = 16,
                 retry_delay: float = 0.2) -> None:
        super().__init__(concurrency, retry_delay)
        twilio.behind_proxy(PUBLIC_URL, gateway_url)
        self.twilio = twilio
        self.url = f"{PUBLIC_URL}/webhook/twilio/sms"

    async def post(self, session: aiohttp.ClientSession, hook: Webhook,
                   to: str = NUMBER) -> int:
        sid = "SM" + uuid.UUID(hook.message_id).hex  # the same for every attempt
        pushed = await self.twilio.push_inbound(self.url, CUSTOMER, to, hook.body, sid=sid)
        return pushed.status

    def taken(self, hook: Webhook) -> bool:
        *before, last = hook.answers
        return last == 200 or (last == 409 and 0 in before)


def poster_for(carrier: str, gateway_url: str, twilio: TwilioSimulator | None = None,
               concurrency: int = 16) -> Poster:
    """The webhook poster of `carrier` (`twilio` needs its simulator)."""
    if carrier == "twilio":
        assert twilio is not None, "the twilio poster posts through its simulator"
        return TwilioPoster(twilio, gateway_url, concurrency)
    return ClickSendPoster(gateway_url, concurrency=concurrency)


def bodies(scenario: str, count: int) -> list[str]:
    """Unique, recognisable bodies: the way both sinks count a message."""
    run = uuid.uuid4().hex[:6]
    return [f"{scenario} {run} #{index:05d}" for index in range(count)]


_TAG = re.compile(r"\S+ [0-9a-f]{6} #[0-9]{5}")


class Sinks:
    """What reached people: app pushes, emails and (when given) SIP phones, per body."""

    def __init__(self, app: MobileAppSimulator, smtp: SmtpServer,
                 phones: FakeFreeSwitch | None = None) -> None:
        self.app, self.smtp, self.phones = app, smtp, phones

    def phone_counts(self) -> Counter[str] | None:
        if self.phones is None:
            return None
        return Counter(message.body for message in self.phones.delivered)

    def app_counts(self) -> Counter[str]:
        return Counter(push.content for push in self.app.pushes)

    def mail_counts(self) -> Counter[str]:
        found: Counter[str] = Counter()
        for mail in self.smtp.mailbox.mails:
            text = mail.message.get_body(("plain",))
            match = _TAG.search(text.get_content() if text is not None else "")
            if match:
                found[match.group(0)] += 1
        return found

    def all_delivered(self, expected: Iterable[str]) -> bool:
        app, mail, phones = self.app_counts(), self.mail_counts(), self.phone_counts()
        return all(app[body] and mail[body] and (phones is None or phones[body])
                   for body in expected)


@dataclass
class Result:
    """One scenario's measured outcome, as the report shows it."""

    scenario: str
    what: str
    sent: int
    delivered: int
    duplicated: int
    lost: int
    bound: int | None = None  # duplicates allowed (in-flight deliveries at a kill)
    notes: str = ""


def measure(scenario: str, what: str, sinks: Sinks, sent: list[str],
            bound: int | None = None, notes: str = "") -> Result:
    """Delivered means to the app and email (and the SIP phones when counted); duplicated
    counts extra copies on any channel; lost is what missed any of them."""
    app, mail = sinks.app_counts(), sinks.mail_counts()
    phones = sinks.phone_counts() or Counter(sent)
    delivered = sum(1 for body in sent if app[body] and mail[body] and phones[body])
    duplicated = sum(max(app[body] - 1, 0) + max(mail[body] - 1, 0)
                     + max(phones[body] - 1, 0) for body in sent)
    return Result(scenario, what, len(sent), delivered, duplicated, len(sent) - delivered,
                  bound, notes)


RESULTS: list[Result] = []


def add_result(result: Result) -> Result:
    RESULTS.append(result)
    print(result)  # shown with -s and in a failure's captured output
    return result


START, END = "<!-- results:start -->", "<!-- results:end -->"


def render(results: list[Result]) -> str:
    """The results table, sorted by scenario, so the same results give the same text."""
    lines = ["| Scenario | What happens | Sent | Delivered | Duplicated | Lost |",
             "|---|---|---:|---:|---:|---:|"]
    for r in sorted(results, key=lambda r: r.scenario):
        dup = f"{r.duplicated} (bound {r.bound})" if r.bound is not None else str(r.duplicated)
        what = r.what + (f" {r.notes}" if r.notes else "")
        lines.append(f"| `{r.scenario}` | {what} | {r.sent} | {r.delivered} | {dup} "
                     f"| {r.lost} |")
    return "\n".join(lines) + "\n"


_ROW = re.compile(r"^\| `([^`]+)` \|")


def write_report(doc: Path, results: list[Result]) -> None:
    """Rewrite the rows of the scenarios in `results` in the results section of `doc`
    (between the markers); the rows of scenarios not run this time stay as they were."""
    text = doc.read_text()
    head, rest = text.split(START, 1)
    old, tail = rest.split(END, 1)
    ran = {r.scenario for r in results}
    kept = {match.group(1): line for line in old.splitlines()
            if (match := _ROW.match(line)) and match.group(1) not in ran}
    table = render(results).splitlines()
    fresh = {r.scenario: line for r, line in
             zip(sorted(results, key=lambda r: r.scenario), table[2:], strict=True)}
    rows = [line for _, line in sorted({**kept, **fresh}.items())]
    doc.write_text(f"{head}{START}\n" + "\n".join(table[:2] + rows) + f"\n{END}{tail}")
