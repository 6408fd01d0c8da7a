"""Downstream faults under a burst: the app endpoint answering 500 and dropping
connections, the SMTP server down, the SIP phone offline, refusing (480), unanswered and
its event socket dropped mid-wait, then back. Transient failures are retried with
backoff until delivered, once; a permanent error is not retried and its dead letter
carries the reason. The inbound path is ClickSend's webhooks, then Twilio's (signed by
its simulator). (ClickSend's 429/5xx/timeouts on the way out: tests/outbound.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from pbxsms.core.model.events import State
from pbxsms.sim.clicksend import ClickSendSimulator
from pbxsms.sim.freeswitch import FakeFreeSwitch
from pbxsms.sim.mobileapp import MobileAppSimulator
from pbxsms.sim.twilio import TwilioSimulator
from tests.faults.support import (
    CARRIERS,
    CUSTOMER,
    NUMBER,
    SECRETS,
    Result,
    Sinks,
    Webhook,
    add_result,
    bodies,
    fault_env,
    gateway_toml,
    measure,
    poster_for,
)
from tests.helpers import wait_until
from tests.support.delivery import ORG, consumers_idle, dead_letter
from tests.support.freeswitch import ESL_PASSWORD
from tests.support.gateway import Gateway
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.faults

# A second number whose extension the app does not know: a permanent error.
UNKNOWN = "+61433333333"
REFUSED = "+61455555555"  # ClickSend refuses it: INVALID_RECIPIENT


def extra(carrier: str) -> str:
    return f"""
[[numbers]]
number = "{UNKNOWN}"
provider = "{carrier}"
extension = "999"
domain = "pbx.example.com"
mobileapp_org = "{ORG}"
"""


@pytest.mark.parametrize("carrier", CARRIERS)
async def test_app_failing_smtp_down_and_phone_offline_retry_until_delivered_once(
    start_gateway: Callable[..., Awaitable[Gateway]], app: MobileAppSimulator,
    smtp: SmtpServer, fake: FakeFreeSwitch, twilio: TwilioSimulator, carrier: str,
) -> None:
    app.add_user(ORG, "201")
    await smtp.stop()
    app.fail_next("500", 40)
    app.fail_next("drop", 10)
    fake.report_delay = 1.0  # a phone's answer takes a while: reports outlive a reconnect
    sip = '\n[freeswitch]\nreport_timeout = "3s"\n'
    env = fault_env(app, smtp, FREESWITCH_ESL_PORT=str(fake.port),
                    FREESWITCH_ESL_PASSWORD=ESL_PASSWORD)
    gateway = await start_gateway(
        toml=gateway_toml(sip=True, carrier=carrier) + extra(carrier) + sip, env=env)
    poster = poster_for(carrier, gateway.url, twilio)
    sent = bodies("downstream", 100)
    await poster.deliver([Webhook(body) for body in sent])
    # Nothing reaches email while it is down, nor the phone while it is not registered;
    # the app's faults are used up by retries.
    await wait_until(lambda: len(app.faults) == 0, 30, "the app's failures retried")
    assert not smtp.mailbox.mails and not fake.delivered
    # The phone registers, refuses ten texts (480), leaves three unanswered, and the event
    # socket drops while sends wait for their reports.
    fake.script(*["480"] * 10, *["none"] * 3, "drop")
    fake.register("201", "pbx.example.com")
    await smtp.start()
    sinks = Sinks(app, smtp, fake)
    await wait_until(lambda: sinks.all_delivered(sent), 120, "every message delivered")

    # A permanent error: not retried, dead-lettered at once with its reason.
    async with aiohttp.ClientSession() as session:
        assert await poster.post(session, Webhook("for an unknown extension"), UNKNOWN) == 200
    letter = await dead_letter(gateway.runtime, "deliver-mobileapp")
    assert "User not found: 999" in letter.reason and letter.attempts == 1
    await consumers_idle(gateway.runtime, "deliver-mobileapp", "deliver-email",
                         "deliver-freeswitch")
    failed_calls = sum(1 for r in app.requests if r.status != 200)
    sip_sends = len(fake.sent_events())
    via = "" if carrier == "clicksend" else f"; inbound through {carrier.title()} webhooks"
    result = add_result(measure(
        "downstream" + ("" if carrier == "clicksend" else f"-{carrier}-inbound"),
        "app API answering 500 (40 calls) and dropping connections (10), "
        "SMTP server down and the SIP phone unregistered until they were used up, then "
        "the phone refusing 10 texts (SIP 480), leaving 3 unanswered and the event socket "
        f"dropped mid-wait{via}", sinks, sent,
        notes=f"({failed_calls} failed app calls retried; {sip_sends} SIP sends for "
              f"{len(sent)} texts on the phone, after {fake.connections} event-socket "
              "connections; a permanent app error was dead-lettered after 1 attempt with "
              "its reason)."))
    assert (result.lost, result.duplicated) == (0, 0)


async def test_clicksend_429_5xx_drops_and_timeouts_on_the_way_out(
    start_gateway: Callable[..., Awaitable[Gateway]], app: MobileAppSimulator,
    smtp: SmtpServer,
) -> None:
    async with ClickSendSimulator() as clicksend:
        clicksend.add_account("pbx-user", SECRETS["CLICKSEND_API_KEY"])
        env = fault_env(app, smtp, CLICKSEND_BASE_URL=clicksend.base_url)
        toml = gateway_toml() + '\n[clicksend]\ntimeout = "500ms"\nreconcile_delay = "4s"\n'
        gateway = await start_gateway(toml=toml, env=env)
        clicksend.fail_next("429", 2, retry_after=1)
        clicksend.fail_next("500", 3)
        clicksend.fail_next("drop", 2)
        clicksend.fail_next("delay", 1, delay=2.0)  # answers after we gave up: ambiguous
        clicksend.force_status(REFUSED, "INVALID_RECIPIENT")
        texts = bodies("outbound", 100)
        ids = [await _send(gateway, text, CUSTOMER) for text in texts]

        async def all_accepted() -> bool:
            for message_id in ids:
                record = await gateway.runtime.status.get(message_id)
                if record is None or record.state != State.ACCEPTED:
                    return False
            return True

        await wait_until(all_accepted, 60, "every send accepted by ClickSend")
        # Once the transient faults are used up, a call of its own: not retried.
        refused = await _send(gateway, "to a number ClickSend refuses", REFUSED)
        letter = await dead_letter(gateway.runtime, "outbound")
        assert letter.id == refused and letter.reason.startswith("INVALID_RECIPIENT")
        status = await gateway.runtime.status.get(refused)
        assert status is not None and status.state == State.FAILED
        sent = Counter(message["body"] for message in clicksend.sent_messages)
        lost = sum(1 for text in texts if not sent[text])
        duplicated = sum(sent[text] - 1 for text in texts if sent[text] > 1)
        refused_sends = sum(1 for r in clicksend.send_requests if REFUSED in str(r.body))
        # ClickSend stored the call it answered too late (after our timeout); its history
        # says so, and those messages are accepted with its ids instead of being resent.
        late = sum(len(r.body.get("messages", [])) for r in clicksend.send_requests
                   if r.fault == "delay")
        stored_ids = {m["custom_string"]: m["message_id"] for m in clicksend.sent_messages}
        for message_id in ids:
            accepted = await gateway.runtime.status.get(message_id)
            assert accepted is not None
            assert accepted.provider_message_id == stored_ids[message_id]
        result = add_result(Result(
            "downstream-clicksend", "ClickSend answering 429 (twice, Retry-After 1 s), 500 "
            "(3), dropping connections (2) and answering one call after our timeout, on "
            "the way out; one recipient refused permanently", sent=len(texts),
            delivered=len(texts) - lost, duplicated=duplicated, lost=lost, bound=0,
            notes=f"(the {late} messages of the call answered after our timeout were found "
                  f"in ClickSend's SMS history and accepted with its ids, not resent; the "
                  f"refused one: {refused_sends} call, failed, dead-lettered with its "
                  f"code)."))
        assert (result.lost, result.duplicated) == (0, 0), sent
        assert refused_sends == 1, "a permanent refusal is not retried"


async def _send(gateway: Gateway, body: str, to: str) -> str:
    headers = {"Authorization": f"Bearer {SECRETS['PBXSMS_API_TOKEN']}"}
    async with aiohttp.ClientSession(headers=headers) as session, session.post(
            f"{gateway.url}/api/v1/messages",
            json={"from": NUMBER, "to": to, "body": body}) as response:
        assert response.status == 202, await response.text()
        return str((await response.json())["id"])
