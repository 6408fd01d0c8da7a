"""Issue 18 acceptance against the strict fake FreeSWITCH and a real gateway: inbound SMS onto
the extension's SIP phones (once), retries, dead letters, and the app and email unaffected."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import ClientSession

from pbxsms.core.model.events import State
from pbxsms.sim.clicksend import ClickSendSimulator
from pbxsms.sim.freeswitch import FakeFreeSwitch
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.freeswitch.support import (
    BOOKINGS,
    CS_KEY,
    CS_TOKEN,
    CS_USER,
    CUSTOMER,
    DOMAIN,
    ESL_PASSWORD,
    TRICKY,
    env,
    other_channels_delivered,
    toml,
)
from tests.helpers import wait_until
from tests.support.delivery import (
    consumers_idle,
    dead_letter,
    inject_inbound,
    routed_inbound,
    wait_channel,
)
from tests.support.gateway import Gateway
from tests.support.smtp import SmtpServer

StartGateway = Callable[..., Awaitable[Gateway]]
CONSUMERS = ("deliver-freeswitch", "deliver-mobileapp", "deliver-email")


async def test_a_webhook_text_reaches_the_phones_as_send_message_with_the_exact_body(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer,
    fake: FakeFreeSwitch, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    fake.register("201", DOMAIN)
    async with ClickSendSimulator() as clicksend:
        clicksend.add_account(CS_USER, CS_KEY)
        gateway = await start_gateway(toml=toml(), env=env(app, smtp, fake, clicksend))
        pushed = await clicksend.push_inbound(
            f"{gateway.url}/webhook/clicksend/sms?token={CS_TOKEN}", CUSTOMER, BOOKINGS,
            TRICKY, webhook_type="json")
        assert pushed.status == 200

        await wait_until(lambda: len(fake.delivered) == 1, 10, "the SIP MESSAGE")
        (sent,) = fake.sent_events()
        assert sent.command == "sendevent CUSTOM"
        assert sent.body == TRICKY.encode()  # bytes for bytes: newlines, |, emoji
        headers = dict(sent.headers)
        assert {key: headers[key] for key in (
            "proto", "dest_proto", "from", "from_user", "from_host", "from_full", "to",
            "to_user", "to_host", "sip_profile", "type", "blocking")} == {
            "proto": "sip", "dest_proto": "sip", "from": CUSTOMER, "from_user": CUSTOMER,
            "from_host": DOMAIN, "from_full": f"sip:{CUSTOMER}@{DOMAIN}",
            "to": f"201@{DOMAIN}", "to_user": "201", "to_host": DOMAIN,
            "sip_profile": "internal", "type": "text/plain", "blocking": "true"}
        assert headers["Content-Length"] == str(len(TRICKY.encode()))
        # The registration was checked first, on the same profile.
        checks = [r.command for r in fake.received if r.command.startswith("api ")]
        assert checks == [f"api sofia_contact internal/201@{DOMAIN}"]

        (push,) = app.pushes
        assert push.content == TRICKY
        message_id = headers["x-pbxsms-id"]
        record = await wait_channel(gateway.runtime, message_id, "freeswitch",
                                    State.DELIVERED)
        (done,) = [h for h in record.history if h.channel == "freeswitch"]
        assert done.provider_message_id is not None and done.attempt == 1
        await other_channels_delivered(gateway.runtime, message_id)
        (mail,) = smtp.mailbox.received_by("bookings@example.com")
        text = mail.get_body(("plain",))
        assert text is not None and "At 8 | or 9 😀🎉" in text.get_content()

        # A replay of the stream reaches no phone twice (the ledger).
        stored = await gateway.runtime.js.get_last_msg(gateway.runtime.stream,
                                                       "sms.inbound.clicksend")
        assert stored.data is not None
        await gateway.runtime.publish("sms.inbound.clicksend", stored.data, "replay-1")
        await consumers_idle(gateway.runtime, *CONSUMERS)
        assert len(fake.delivered) == 1 and len(fake.sent_events()) == 1
        # Neither the text (personal data) nor the event-socket password is logged.
        logged = "\n".join(record.getMessage() for record in caplog.records)
        assert "pbxsms.freeswitch" in {r.name for r in caplog.records}
        assert "Table for 4?" not in logged and ESL_PASSWORD not in logged


async def test_not_registered_is_retried_then_dead_lettered_with_the_reason(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer,
    fake: FakeFreeSwitch,
) -> None:
    gateway = await start_gateway(toml=toml(retry_for="1s"), env=env(app, smtp, fake))
    message = routed_inbound("Are you open today?")
    await inject_inbound(gateway.runtime, message)

    letter = await dead_letter(gateway.runtime, "deliver-freeswitch")
    assert letter.id == message.id and letter.attempts >= 2
    assert letter.reason == (f"extension 201@{DOMAIN} has no registered SIP device "
                             "(still after 1s: FREESWITCH_RETRY_FOR)")
    assert letter.original["body"] == "Are you open today?"
    record = await wait_channel(gateway.runtime, message.id, "freeswitch", State.FAILED)
    states = [h.state for h in record.history if h.channel == "freeswitch"]
    assert states[-1] == State.FAILED and set(states[:-1]) == {State.RETRYING}
    assert fake.sent_events() == []  # never sent to nobody
    assert len(fake.received) > 2  # asked again at each attempt
    await other_channels_delivered(gateway.runtime, message.id)


async def test_a_sip_failure_is_retried_until_a_phone_takes_it_once(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer,
    fake: FakeFreeSwitch,
) -> None:
    fake.register("201", DOMAIN)
    fake.script("480", "480")
    gateway = await start_gateway(toml=toml(), env=env(app, smtp, fake))
    message = routed_inbound("Is the table still free?")
    await inject_inbound(gateway.runtime, message)

    record = await wait_channel(gateway.runtime, message.id, "freeswitch", State.DELIVERED)
    retries = [h for h in record.history if h.channel == "freeswitch"
               and h.state == State.RETRYING]
    assert [h.reason for h in retries] == [
        "SIP 480 Temporarily Unavailable from the extension's device"] * 2
    assert len(fake.sent_events()) == 3
    assert [d.body for d in fake.delivered] == ["Is the table still free?"]
    await other_channels_delivered(gateway.runtime, message.id)


async def test_a_sip_failure_that_lasts_dead_letters_with_the_sip_reason(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer,
    fake: FakeFreeSwitch,
) -> None:
    fake.register("201", DOMAIN)
    fake.default_outcome = "486"
    gateway = await start_gateway(toml=toml(retry_for="1s"), env=env(app, smtp, fake))
    message = routed_inbound("Call me")
    await inject_inbound(gateway.runtime, message)
    letter = await dead_letter(gateway.runtime, "deliver-freeswitch")
    assert letter.reason == ("SIP 486 Busy Here from the extension's device (still after "
                             "1s: FREESWITCH_RETRY_FOR)")
    assert fake.delivered == []
    await other_channels_delivered(gateway.runtime, message.id)


async def test_no_report_in_time_is_retried(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer,
    fake: FakeFreeSwitch,
) -> None:
    fake.register("201", DOMAIN)
    fake.script("none")
    gateway = await start_gateway(toml=toml(report_timeout="500ms"),
                                  env=env(app, smtp, fake))
    message = routed_inbound("Anyone there?")
    await inject_inbound(gateway.runtime, message)
    record = await wait_channel(gateway.runtime, message.id, "freeswitch", State.DELIVERED)
    (retry,) = [h for h in record.history if h.channel == "freeswitch"
                and h.state == State.RETRYING]
    assert retry.reason == "no delivery report from FreeSWITCH within 0.5s"
    assert len(fake.sent_events()) == 2 and len(fake.delivered) == 1
    await other_channels_delivered(gateway.runtime, message.id)


async def test_a_connection_dropped_mid_wait_reconnects_and_delivers_exactly_once(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer,
    fake: FakeFreeSwitch,
) -> None:
    fake.register("201", DOMAIN)
    fake.report_delay = 1.5  # the phone answers after the gateway reconnected
    fake.script("drop")
    gateway = await start_gateway(toml=toml(report_timeout="5s"), env=env(app, smtp, fake))
    message = routed_inbound("Still on for tonight?")
    await inject_inbound(gateway.runtime, message)
    record = await wait_channel(gateway.runtime, message.id, "freeswitch", State.DELIVERED)
    assert fake.connections >= 2  # dropped, then reconnected
    assert len(fake.sent_events()) == 1 and len(fake.delivered) == 1
    assert all(h.state != State.RETRYING for h in record.history
               if h.channel == "freeswitch")
    await consumers_idle(gateway.runtime, *CONSUMERS)
    assert len(fake.delivered) == 1
    await other_channels_delivered(gateway.runtime, message.id)


async def test_a_report_lost_with_the_connection_is_sent_again_then_settled(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer,
    fake: FakeFreeSwitch,
) -> None:
    # The report fires while nobody listens: the attempt times out and is retried.
    fake.register("201", DOMAIN)
    fake.report_delay = 0.0
    fake.script("drop")
    gateway = await start_gateway(toml=toml(report_timeout="1s"), env=env(app, smtp, fake))
    message = routed_inbound("Lost answer")
    await inject_inbound(gateway.runtime, message)
    await wait_channel(gateway.runtime, message.id, "freeswitch", State.DELIVERED)
    # The documented exception to once-only: a delivery whose answer was lost repeats.
    assert len(fake.sent_events()) == 2
    await other_channels_delivered(gateway.runtime, message.id)


async def test_numbers_without_sip_are_not_this_channels_business(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer,
    fake: FakeFreeSwitch,
) -> None:
    fake.register("201", DOMAIN)
    gateway = await start_gateway(toml=toml(sip=False), env=env(app, smtp, fake))
    message = routed_inbound("Just the app please")
    await inject_inbound(gateway.runtime, message)
    await other_channels_delivered(gateway.runtime, message.id)
    await consumers_idle(gateway.runtime, *CONSUMERS)
    record = await gateway.runtime.status.get(message.id)
    assert record is not None and "freeswitch" not in record.channels
    assert fake.sent_events() == []


async def test_a_report_later_than_the_wait_settles_the_retry_without_a_second_text(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer,
    fake: FakeFreeSwitch,
) -> None:
    fake.register("201", DOMAIN)
    fake.report_delay = 0.8
    gateway = await start_gateway(toml=toml(report_timeout="500ms"),
                                  env=env(app, smtp, fake))
    message = routed_inbound("Slow phone")
    await inject_inbound(gateway.runtime, message)
    record = await wait_channel(gateway.runtime, message.id, "freeswitch", State.DELIVERED)
    states = [h.state for h in record.history if h.channel == "freeswitch"]
    assert states == [State.RETRYING, State.DELIVERED]
    assert len(fake.sent_events()) == 1 and len(fake.delivered) == 1
    await other_channels_delivered(gateway.runtime, message.id)


async def test_a_wrong_password_shows_on_readyz_and_a_reload_with_the_right_one_delivers(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer,
    fake: FakeFreeSwitch,
) -> None:
    fake.register("201", DOMAIN)
    gateway = await start_gateway(toml=toml(), env=env(app, smtp, fake, password="wrong"))
    message = routed_inbound("After the fix")
    await inject_inbound(gateway.runtime, message)
    record = await wait_channel(gateway.runtime, message.id, "freeswitch", State.RETRYING)
    reason = record.channels["freeswitch"].reason or ""
    assert "refused the password" in reason and "FREESWITCH_ESL_PASSWORD" in reason
    async with ClientSession() as http, http.get(f"{gateway.url}/readyz") as response:
        ready = await response.json()
    assert response.status == 200 and ready["status"] == "degraded"
    assert any("refused the password" in line for line in ready["degraded"])
    await other_channels_delivered(gateway.runtime, message.id)

    env_file = gateway.runtime.config.env_file
    assert env_file is not None
    env_file.write_text(env_file.read_text().replace(
        "FREESWITCH_ESL_PASSWORD=wrong", f"FREESWITCH_ESL_PASSWORD={ESL_PASSWORD}"))
    await gateway.server.reload()
    await wait_channel(gateway.runtime, message.id, "freeswitch", State.DELIVERED, 15)
    assert [d.body for d in fake.delivered] == ["After the fix"]
    async with ClientSession() as http, http.get(f"{gateway.url}/readyz") as response:
        assert (await response.json())["status"] == "ready"
