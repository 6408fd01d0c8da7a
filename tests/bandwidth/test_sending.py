"""Sending through Bandwidth: an OAuth2 token asked once and reused, a refused token
renewed, each failure classified (retry, failed, paused, ambiguous) and the asynchronous
opt-out (4775) shown as such."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pbxsms.sim.bandwidth import BandwidthSimulator
from tests.support import carriers
from tests.support.bandwidth import CUSTOMER, OURS, bandwidth_env, toml
from tests.support.carriers import last_status, settled
from tests.support.gateway import Gateway

StartGateway = Callable[..., Awaitable[Gateway]]


async def start(start_gateway: StartGateway, bandwidth: BandwidthSimulator, **env: str
                ) -> Gateway:
    return await start_gateway(toml=toml(), env=bandwidth_env(bandwidth, **env))


async def send(gateway: Gateway, body: str = "hello", to: str = CUSTOMER) -> str:
    return await carriers.send(gateway, OURS, to, body)


async def test_the_token_is_asked_once_and_renewed_when_refused(
        start_gateway: StartGateway, bandwidth: BandwidthSimulator) -> None:
    gateway = await start(start_gateway, bandwidth)
    for n in range(3):
        await settled(gateway, await send(gateway, f"n{n}"), "accepted")
    assert len(bandwidth.token_requests) == 1
    (token,) = bandwidth.token_requests
    assert token.method == "POST" and token.body == {"grant_type": "client_credentials"}
    bandwidth.expire_tokens()  # revoked early: the 401 brings a new token, then the send
    await settled(gateway, await send(gateway, "after"), "accepted")
    assert len(bandwidth.token_requests) == 2
    assert [r.status for r in bandwidth.send_requests] == [202, 202, 202, 401, 202]


async def test_a_refused_client_pauses_sending(start_gateway: StartGateway,
                                               bandwidth: BandwidthSimulator) -> None:
    gateway = await start(start_gateway, bandwidth, BANDWIDTH_CLIENT_SECRET="wrong-secret")
    record = await settled(gateway, await send(gateway, "one"), "failed")
    assert "BANDWIDTH_CLIENT_SECRET" in (record.history[-1].reason or "")
    await settled(gateway, await send(gateway, "two"), "failed")
    assert len(bandwidth.token_requests) == 1, "paused: the second made no call"
    assert bandwidth.send_requests == []
    degraded = gateway.runtime.plugins.degraded(gateway.runtime)
    assert any(reason.startswith("bandwidth: sending paused") for reason in degraded)
    assert "wrong-secret" not in " ".join(degraded)


async def test_a_full_queue_and_a_5xx_are_retried(start_gateway: StartGateway,
                                                  bandwidth: BandwidthSimulator) -> None:
    gateway = await start(start_gateway, bandwidth)
    bandwidth.fail_next("429")
    bandwidth.fail_next("500")
    record = await settled(gateway, await send(gateway), "accepted")
    assert [r.status for r in bandwidth.send_requests] == [429, 500, 202]
    codes = [e.error_code for e in record.history if e.state.value == "retrying"]
    assert codes == ["max-message-queue-size-exceeded", "internal-server-error"]
    assert len(bandwidth.sent_messages) == 1


async def test_a_lost_answer_is_unknown_not_sent_twice(
        start_gateway: StartGateway, bandwidth: BandwidthSimulator) -> None:
    gateway = await start(start_gateway, bandwidth)
    bandwidth.fail_next("drop")
    await settled(gateway, await send(gateway), "unknown")
    assert len(bandwidth.send_requests) == 1


async def test_a_refused_request_fails_with_the_field(start_gateway: StartGateway,
                                                      bandwidth: BandwidthSimulator) -> None:
    gateway = await start(start_gateway, bandwidth,
                          BANDWIDTH_APPLICATION_ID="not-the-application")
    record = await settled(gateway, await send(gateway), "failed")
    assert record.history[-1].error_code == "request-validation"
    assert "applicationId" in (record.history[-1].reason or "")
    assert len(bandwidth.send_requests) == 1


async def test_an_opted_out_recipient_fails_for_good_and_says_so(
        start_gateway: StartGateway, bandwidth: BandwidthSimulator) -> None:
    gateway = await start(start_gateway, bandwidth)
    bandwidth.callback_url = f"{gateway.url}/webhook/bandwidth"
    bandwidth.opt_out(CUSTOMER)
    message_id = await send(gateway)
    record = await settled(gateway, message_id, "failed")
    failed = record.history[-1]
    assert failed.error_code == "4775" and "opted out" in (failed.reason or "")
    status = await last_status(gateway, message_id)
    assert status["details"]["opted_out"] is True
    assert len(bandwidth.send_requests) == 1


async def test_no_receipt_within_two_hours_is_unknown(
        start_gateway: StartGateway, bandwidth: BandwidthSimulator) -> None:
    gateway = await start(start_gateway, bandwidth)
    message_id = await send(gateway)
    await settled(gateway, message_id, "accepted")
    (sent,) = bandwidth.sent_messages
    result = await bandwidth.push_receipt(f"{gateway.url}/webhook/bandwidth", sent["id"],
                                          "message-failed", error_code=9902)
    assert result.status == 200
    record = await settled(gateway, message_id, "unknown")
    assert record.history[-1].error_code == "9902"


