"""Sending through Twilio: each error code judged as the operator needs it, Twilio's rate
honoured per number, an ambiguous send looked up before anything is sent again, doctor
and the webhook-url command."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aiohttp import ClientSession
from click.testing import CliRunner

from pbxsms.core.cli import build_cli
from pbxsms.core.health.doctor import run_doctor
from pbxsms.core.model.events import State
from pbxsms.core.stores.status import StatusRecord
from pbxsms.sim.twilio import TwilioSimulator
from tests.helpers import wait_until, write_env
from tests.support.delivery import wait_channel
from tests.support.gateway import Gateway
from tests.twilio.support import CUSTOMER, OUR_NUMBER, SMS_URL, StartGateway, numbers_toml


async def send(gateway: Gateway, to: str = CUSTOMER, body: str = "Your table is ready",
               from_: str = OUR_NUMBER) -> str:
    async with ClientSession() as http, http.post(
            f"{gateway.url}/api/v1/messages", json={"from": from_, "to": to, "body": body},
            headers={"Authorization": "Bearer api-token"}) as response:
        assert response.status == 202, await response.text()
        message_id: str = (await response.json())["id"]
        return message_id


def states(record: StatusRecord) -> list[tuple[str, str | None]]:
    return [(entry.state.value, entry.error_code) for entry in record.history
            if entry.channel == "twilio"]


async def test_an_opted_out_recipient_fails_for_good_and_says_so(
        start_twilio_gateway: StartGateway, twilio: TwilioSimulator) -> None:
    gateway = await start_twilio_gateway()
    ours = await send(gateway, to="+15005550004")  # Twilio's magic number for 21610
    record = await wait_channel(gateway.runtime, ours, "twilio", State.FAILED)
    failed = record.history[-1]
    assert failed.error_code == "21610"
    assert failed.reason is not None and "opted out (replied STOP)" in failed.reason
    assert len(twilio.create_requests) == 1  # never tried again


async def test_configuration_and_recipient_errors_fail_with_twilios_code(
        start_twilio_gateway: StartGateway, twilio: TwilioSimulator) -> None:
    gateway = await start_twilio_gateway()
    cases = {"+15005550001": "21211", "+15005550002": "21612", "+15005550009": "21614",
             "+15005550003": "21408"}
    sent = {await send(gateway, to=to): code for to, code in cases.items()}
    for ours, code in sent.items():
        record = await wait_channel(gateway.runtime, ours, "twilio", State.FAILED)
        assert record.history[-1].error_code == code
    assert len(twilio.create_requests) == len(cases)
    assert twilio.sent == []


async def test_wrong_credentials_pause_sending(start_twilio_gateway: StartGateway,
                                               twilio: TwilioSimulator) -> None:
    gateway = await start_twilio_gateway(TWILIO_AUTH_TOKEN="rotated-away")
    ours = await send(gateway)
    record = await wait_channel(gateway.runtime, ours, "twilio", State.FAILED)
    assert record.history[-1].error_code == "20003"
    assert "TWILIO_ACCOUNT_SID" in (record.history[-1].reason or "")
    # Paused: the next message fails at once without calling Twilio, and readiness says so.
    second = await send(gateway, body="again")
    await wait_channel(gateway.runtime, second, "twilio", State.FAILED)
    assert len(twilio.create_requests) == 1
    async with ClientSession() as http, http.get(f"{gateway.url}/readyz") as response:
        ready = await response.json()
    assert response.status == 200
    assert any("twilio: sending paused" in reason for reason in ready["degraded"])


async def test_a_429_is_retried_later_and_sent_once(start_twilio_gateway: StartGateway,
                                                    twilio: TwilioSimulator) -> None:
    gateway = await start_twilio_gateway()
    twilio.fail_next("429", retry_after=1)
    ours = await send(gateway)
    record = await wait_channel(gateway.runtime, ours, "twilio", State.ACCEPTED)
    assert ("retrying", "20429") in states(record)
    assert [r.status for r in twilio.create_requests] == [429, 201]
    assert len(twilio.sent) == 1


async def test_an_ambiguous_send_is_looked_up_and_never_sent_twice(
        start_twilio_gateway: StartGateway, twilio: TwilioSimulator) -> None:
    gateway = await start_twilio_gateway()
    # Twilio created the message but answered 500: found in its list, accepted.
    twilio.fail_next("store_then_500")
    first = await send(gateway, body="first")
    record = await wait_channel(gateway.runtime, first, "twilio", State.ACCEPTED)
    assert record.provider_message_id == twilio.sent[0]["sid"]
    assert len(twilio.create_requests) == 1
    # The connection dropped before Twilio read it: not in the list, so sent again.
    twilio.fail_next("drop")
    second = await send(gateway, body="second")
    record = await wait_channel(gateway.runtime, second, "twilio", State.ACCEPTED)
    assert [m["body"] for m in twilio.sent] == ["first", "second"]
    assert ("retrying", "NO_ANSWER") in states(record)


async def test_each_number_sends_no_faster_than_its_rate(start_twilio_gateway: StartGateway,
                                                         twilio: TwilioSimulator) -> None:
    toml = numbers_toml().replace("segments_per_second = 50", "segments_per_second = 4")
    gateway = await start_twilio_gateway(toml=toml)
    # Eight one-segment messages at 4 a second (bursts of 4): at least a second apart
    # from the first to the last.
    ids = [await send(gateway, body=f"message {n}") for n in range(8)]
    await wait_until(lambda: len(twilio.sent) == 8, timeout=15, message="eight sends")
    times = sorted(r.at for r in twilio.create_requests)
    assert times[-1] - times[0] >= 0.95
    assert _within(times, window=0.5, most=4 + 2)
    for ours in ids:
        await wait_channel(gateway.runtime, ours, "twilio", State.ACCEPTED)


def _within(times: Sequence[float], window: float, most: int) -> bool:
    """No `window` seconds hold more than `most` of `times`."""
    return all(sum(start <= t < start + window for t in times) <= most for start in times)


async def test_doctor_says_what_is_wrong_and_how_to_fix_it(
        start_twilio_gateway: StartGateway, twilio: TwilioSimulator) -> None:
    gateway = await start_twilio_gateway()
    number = twilio.add_number(OUR_NUMBER, sms_url=SMS_URL)
    lines: list[str] = []
    assert await run_doctor(gateway.runtime.config, gateway.runtime.plugins, lines.append)
    output = "\n".join(lines)
    assert "twilio" in output and "accepted the credentials" in output
    assert "signatures checked over https://sms.example.com/webhook/twilio/sms" in output
    assert f"1 number(s) post their messages to {SMS_URL}" in output
    assert "twilio-auth-token-for-tests" not in output

    number["sms_url"] = "https://old-pbx.example.com/sms"
    lines.clear()
    assert not await run_doctor(gateway.runtime.config, gateway.runtime.plugins, lines.append)
    output = "\n".join(lines)
    assert f"{OUR_NUMBER} posts its messages to https://old-pbx.example.com/sms" in output
    assert f"A MESSAGE COMES IN: Webhook, {SMS_URL}, HTTP POST" in output
    del twilio.numbers[OUR_NUMBER]
    lines.clear()
    assert not await run_doctor(gateway.runtime.config, gateway.runtime.plugins, lines.append)
    assert f"{OUR_NUMBER} is not a number of account" in "\n".join(lines)
    twilio.add_number(OUR_NUMBER, sms_url=SMS_URL)

    twilio.auth_token = "rotated"
    lines.clear()
    assert not await run_doctor(gateway.runtime.config, gateway.runtime.plugins, lines.append)
    output = "\n".join(lines)
    assert "credentials refused" in output and "TWILIO_AUTH_TOKEN" in output


def test_webhook_url_and_config_check(tmp_path: Path) -> None:
    config = tmp_path / "pbxsms.toml"
    config.write_text('[plugins]\nenabled = ["twilio"]\n')
    env = write_env(tmp_path / ".env", PBXSMS_PUBLIC_URL="https://sms.example.com/",
                    TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_AUTH_TOKEN="very-secret")
    args = ["--env-file", str(env), "--config", str(config)]
    result = CliRunner().invoke(build_cli(), ["twilio", "webhook-url", *args])
    assert result.exit_code == 0, result.output
    assert "  https://sms.example.com/webhook/twilio/sms\n" in result.output
    assert "  https://sms.example.com/webhook/twilio/status\n" in result.output

    result = CliRunner().invoke(build_cli(), ["config", "check", *args])
    assert "TWILIO_AUTH_TOKEN" in result.output and "very-secret" not in result.output
    assert "(set, hidden)" in result.output
