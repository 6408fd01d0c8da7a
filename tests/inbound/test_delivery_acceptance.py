"""Issue 6 acceptance: an SMTP outage under load, and an app API that always fails."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from aiohttp import ClientSession

from pbxsms.core.model.events import State
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.helpers import wait_until
from tests.support.delivery import (
    bus_toml,
    consumers_idle,
    dead_letter,
    delivery_env,
    inject_inbound,
    routed_inbound,
    wait_channel,
)
from tests.support.gateway import Gateway
from tests.support.smtp import SmtpServer

StartGateway = Callable[..., Awaitable[Gateway]]

# The scenario stops SMTP for 30 s; the suite uses 5 s, which exercises the same
# path (every message retried several times while down). SMTP_OUTAGE_SECONDS=30 runs it
# at full length.
OUTAGE = float(os.environ.get("SMTP_OUTAGE_SECONDS", "5"))
MESSAGES = 200


async def test_smtp_outage_under_load_delivers_every_email_once_without_delaying_pushes(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer
) -> None:
    # Enough attempts to outlast the outage at a 1 s backoff ceiling.
    toml = bus_toml(max_deliver=int(OUTAGE) + 20, backoff_initial="250ms")
    gateway = await start_gateway(toml=toml, env=delivery_env(app, smtp))
    runtime = gateway.runtime
    await smtp.stop()
    down_since = time.monotonic()
    messages = [routed_inbound(f"message {n}", emails=("desk@example.com",))
                for n in range(MESSAGES)]
    # A burst, as concurrent webhooks would publish it.
    await asyncio.gather(*(inject_inbound(runtime, message) for message in messages))

    # The app pushes do not wait for email: all of them arrive while SMTP is down.
    await wait_until(lambda: len(app.pushes) == MESSAGES, 30, "every push during the outage")
    assert smtp.mailbox.mails == []

    checked = [0.0]

    async def all_email(state: State) -> bool:
        # 200 record reads: twice a second, not at wait_until's pace, to leave the
        # gateway its CPU.
        if time.monotonic() - checked[0] < 0.5:
            return False
        checked[0] = time.monotonic()
        records = await asyncio.gather(*(runtime.status.get(m.id) for m in messages))
        return all(r is not None and "email" in r.channels
                   and r.channels["email"].state == state for r in records)

    await wait_until(lambda: all_email(State.RETRYING), 30, "every email retrying")
    await asyncio.sleep(max(OUTAGE - (time.monotonic() - down_since), 0))  # the outage
    await smtp.start()

    await wait_until(lambda: all_email(State.DELIVERED), 30, "every email delivered")
    await consumers_idle(runtime, "deliver-email", "deliver-mobileapp")
    received = Counter(mail.message["Message-ID"] for mail in smtp.mailbox.mails)
    assert len(received) == MESSAGES, "an email is missing"
    assert set(received.values()) == {1}, "an email arrived twice"
    assert received == Counter(f"<{m.id}.sms@pbx.example.com>" for m in messages)
    assert len(app.pushes) == MESSAGES


async def test_an_app_api_that_always_fails_dead_letters_and_email_still_arrives(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer
) -> None:
    app.fail_always("500")
    gateway = await start_gateway(toml=bus_toml(max_deliver=3),
                                  env=delivery_env(app, smtp, PBXSMS_API_TOKEN="api-token"))
    message = routed_inbound("Please call me back")
    await inject_inbound(gateway.runtime, message)

    letter = await dead_letter(gateway.runtime, "deliver-mobileapp")
    assert letter.id == message.id and letter.attempts == 3
    assert letter.reason == "app API answered HTTP 500: Internal Server Error (after 3 attempts)"
    assert letter.original["body"] == "Please call me back"
    await wait_channel(gateway.runtime, message.id, "email", State.DELIVERED)
    (mail,) = smtp.mailbox.received_by("desk@example.com")
    assert "Please call me back" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    await wait_channel(gateway.runtime, message.id, "mobileapp", State.FAILED)
    headers = {"Authorization": "Bearer api-token"}
    async with ClientSession(headers=headers) as http, \
            http.get(f"{gateway.url}/api/v1/messages/{message.id}") as response:
        status = await response.json()
    assert status["summary"] == "email: delivered, mobileapp: failed"
    attempts = [(h["state"], h["attempt"]) for h in status["history"]
                if h["channel"] == "mobileapp"]
    assert attempts == [("retrying", 1), ("retrying", 2), ("failed", 3)]
    assert len(app.requests) == 3
