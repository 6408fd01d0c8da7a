"""Downstream faults under a burst: the app endpoint answering 500 and dropping
connections, the SMTP server down, then back. Transient failures are retried with
backoff until delivered, once; a permanent error is not retried and its dead letter
carries the reason. (ClickSend's 429/5xx/timeouts on the way out: tests/outbound.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from pbxsms.plugins.mobileapp.simulator import MobileAppSimulator
from tests.conftest import Gateway
from tests.delivery.support import ORG, SmtpServer, consumers_idle, dead_letter
from tests.faults.support import (
    ClickSendPoster,
    Sinks,
    Webhook,
    bodies,
    gateway_env,
    gateway_toml,
    inbound_payload,
    measure,
    record,
)
from tests.helpers import wait_until

pytestmark = pytest.mark.faults

# A second number whose extension the app does not know: a permanent error.
UNKNOWN = "+61433333333"
EXTRA = f"""
[[numbers]]
number = "{UNKNOWN}"
provider = "clicksend"
extension = "999"
domain = "pbx.example.com"
mobileapp_org = "{ORG}"
"""


async def test_app_failing_and_smtp_down_retry_until_delivered_once(
    start_gateway: Callable[..., Awaitable[Gateway]], app: MobileAppSimulator,
    smtp: SmtpServer,
) -> None:
    app.add_user(ORG, "201")
    await smtp.stop()
    app.fail_next("500", 40)
    app.fail_next("drop", 10)
    gateway = await start_gateway(toml=gateway_toml() + EXTRA, env=gateway_env(app, smtp))
    sent = bodies("downstream", 100)
    await ClickSendPoster(gateway.url).deliver([Webhook(body) for body in sent])
    # Nothing reaches email while it is down; the app's faults are used up by retries.
    await wait_until(lambda: len(app.faults) == 0, 30, "the app's failures retried")
    assert not smtp.mailbox.mails
    await smtp.start()
    sinks = Sinks(app, smtp)
    await wait_until(lambda: sinks.all_delivered(sent), 120, "every message delivered")

    # A permanent error: not retried, dead-lettered at once with its reason.
    url = ClickSendPoster(gateway.url).urls[0]
    async with aiohttp.ClientSession() as session, session.post(
            url, json=inbound_payload("for an unknown extension", "PERM-1", to=UNKNOWN)
    ) as response:
        assert response.status == 200
    letter = await dead_letter(gateway.runtime, "deliver-mobileapp")
    assert "User not found: 999" in letter.reason and letter.attempts == 1
    await consumers_idle(gateway.runtime, "deliver-mobileapp", "deliver-email")
    failed_calls = sum(1 for r in app.requests if r.status != 200)
    result = record(measure(
        "downstream", "app API answering 500 (40 calls) and dropping connections (10), "
        "SMTP server down until they were used up, then started", sinks, sent,
        notes=f"({failed_calls} failed app calls retried; a permanent app error was "
              "dead-lettered after 1 attempt with its reason)."))
    assert (result.lost, result.duplicated) == (0, 0)
