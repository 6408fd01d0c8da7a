"""Sending through Telnyx: one message a call, its rate limit honoured, each error code
classified (retry, failed, opted out, paused, ambiguous) and visible in the status."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from pbxsms.sim.telnyx import TelnyxSimulator
from tests.support.carriers import last_status
from tests.support.gateway import Gateway
from tests.support.telnyx import CUSTOMER, send, settled, telnyx_env, toml

StartGateway = Callable[..., Awaitable[Gateway]]


async def start(start_gateway: StartGateway, telnyx: TelnyxSimulator, tuning: str = "",
                **env: str) -> Gateway:
    return await start_gateway(toml=toml(more=f"[telnyx]\n{tuning}\n"),
                               env=telnyx_env(telnyx, **env))


async def test_a_429_holds_sending_for_its_reset_then_the_message_goes(
        start_gateway: StartGateway, telnyx: TelnyxSimulator) -> None:
    gateway = await start(start_gateway, telnyx)
    telnyx.fail_next("429", reset=1)
    message_id = await send(gateway)
    record = await settled(gateway, message_id, "accepted")
    first, second = telnyx.send_requests
    assert (first.status, second.status) == (429, 200)
    # x-ratelimit-reset said 1 s: the next call waited for it.
    assert second.received_at - first.received_at >= 0.9
    retrying = [e for e in record.history if e.state.value == "retrying"]
    assert retrying and retrying[0].error_code == "10011"
    assert len(telnyx.sent_messages) == 1


async def test_the_client_side_rate_limit_spaces_the_calls(
        start_gateway: StartGateway, telnyx: TelnyxSimulator) -> None:
    gateway = await start(start_gateway, telnyx, "requests_per_second = 10")
    started = time.monotonic()
    ids = [await send(gateway, f"n{n}", to=f"+1773555{n:04d}") for n in range(15)]
    for message_id in ids:
        await settled(gateway, message_id, "accepted")
    # A burst of 10, then 10 a second: 15 calls cannot all go within 0.4 s.
    times = sorted(r.received_at for r in telnyx.send_requests)
    assert len(times) == 15 and times[-1] - times[0] >= 0.4
    assert time.monotonic() - started >= 0.4


async def test_an_opted_out_recipient_fails_for_good_and_says_so(
        start_gateway: StartGateway, telnyx: TelnyxSimulator) -> None:
    gateway = await start(start_gateway, telnyx)
    telnyx.opt_out(CUSTOMER)
    message_id = await send(gateway)
    record = await settled(gateway, message_id, "failed")
    assert len(telnyx.send_requests) == 1, "an opt-out is never retried"
    failed = record.history[-1]
    assert failed.error_code == "40300" and failed.reason is not None
    assert "opted out" in failed.reason
    status = await last_status(gateway, message_id)
    assert status["state"] == "failed" and status["details"] == {"opted_out": True}


async def test_a_refused_key_pauses_sending(start_gateway: StartGateway,
                                            telnyx: TelnyxSimulator) -> None:
    gateway = await start(start_gateway, telnyx, TELNYX_API_KEY="wrong-key")
    first = await send(gateway, "one")
    record = await settled(gateway, first, "failed")
    assert record.history[-1].error_code == "10009"
    assert "TELNYX_API_KEY" in (record.history[-1].reason or "")
    second = await send(gateway, "two")
    await settled(gateway, second, "failed")
    assert len(telnyx.send_requests) == 1, "paused: the second message made no call"
    degraded = gateway.runtime.plugins.degraded(gateway.runtime)
    assert any(reason.startswith("telnyx: sending paused") for reason in degraded)
    assert "wrong-key" not in " ".join(degraded)


async def test_a_lost_answer_is_unknown_not_sent_twice(
        start_gateway: StartGateway, telnyx: TelnyxSimulator) -> None:
    gateway = await start(start_gateway, telnyx)
    telnyx.fail_next("store_then_500")
    message_id = await send(gateway)
    record = await settled(gateway, message_id, "unknown")
    assert len(telnyx.sent_messages) == 1 and len(telnyx.send_requests) == 1
    assert record.history[-1].error_code == "10007"


async def test_an_unavailable_telnyx_is_retried(start_gateway: StartGateway,
                                                telnyx: TelnyxSimulator) -> None:
    gateway = await start(start_gateway, telnyx)
    telnyx.fail_next("503")
    message_id = await send(gateway)
    await settled(gateway, message_id, "accepted")
    assert [r.status for r in telnyx.send_requests] == [503, 200]


async def test_a_number_not_on_the_profile_fails_with_a_setup_hint(
        start_gateway: StartGateway, telnyx: TelnyxSimulator) -> None:
    gateway = await start(start_gateway, telnyx)
    telnyx.numbers = {"+13125550199"}  # not ours
    message_id = await send(gateway)
    record = await settled(gateway, message_id, "failed")
    assert len(telnyx.send_requests) == 1
    assert record.history[-1].error_code == "40305"
    assert "setup" in (record.history[-1].reason or "")
