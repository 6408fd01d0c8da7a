"""Ambiguous sends (a timeout, a dropped connection or a 5xx after the request went out):
ClickSend's SMS history says which messages it stored; only the others follow
`on_ambiguous` (retry, or mark `unknown`)."""

from __future__ import annotations

from collections import Counter

from pbxsms.core.model.events import State
from pbxsms.sim.clicksend import HISTORY_PATH, ClickSendSimulator
from tests.helpers import wait_until
from tests.outbound.sending import dead_letters, drained, metric, recipient, send_via_api
from tests.support.carriers import settled
from tests.support.gateway import StartGateway

FAST = 'reconcile_delay = "0s"'


def history_calls(sim: ClickSendSimulator) -> int:
    return sum(1 for r in sim.requests if r.path == HISTORY_PATH)


def stored(sim: ClickSendSimulator) -> Counter[str]:
    return Counter(str(m["custom_string"]) for m in sim.sent_messages)


async def test_a_send_answered_after_our_timeout_is_accepted_once(
        start_sending_gateway: StartGateway, sim: ClickSendSimulator) -> None:
    # ClickSend finishes the call 1 s in, after we gave up at 300 ms; the history is read
    # after the settle delay and finds it.
    gateway = await start_sending_gateway(
        clicksend='timeout = "300ms"\nreconcile_delay = "1500ms"\nflush_delay = "300ms"')
    accepted = metric("pbxsms_provider_reconciled_total", provider="clicksend",
                      result="accepted")
    sim.fail_next("delay", delay=1.0)
    ids = [await send_via_api(gateway, f"late {n}", to=recipient(n)) for n in range(3)]
    records = [await settled(gateway, i, "accepted") for i in ids]
    await wait_until(lambda: drained(gateway, "outbound"), message="the dispatcher")
    assert stored(sim) == Counter(ids), "each message stored exactly once"
    by_id = {m["custom_string"]: m["message_id"] for m in sim.sent_messages}
    assert [r.provider_message_id for r in records] == [by_id[i] for i in ids]
    assert len(sim.send_requests) == 1 and history_calls(sim) == 1
    assert metric("pbxsms_provider_reconciled_total", provider="clicksend",
                  result="accepted") - accepted == 3


async def test_a_store_then_500_is_accepted_once(start_sending_gateway: StartGateway,
                                                 sim: ClickSendSimulator) -> None:
    gateway = await start_sending_gateway(clicksend=FAST)
    sim.fail_next("store_then_500")
    message_id = await send_via_api(gateway)
    record = await settled(gateway, message_id, "accepted")
    await wait_until(lambda: drained(gateway, "outbound"), message="the dispatcher")
    assert stored(sim) == Counter([message_id])
    assert record.provider_message_id == sim.sent_messages[0]["message_id"]
    assert len(sim.send_requests) == 1 and history_calls(sim) == 1


async def test_a_500_that_stored_nothing_is_retried_and_accepted_once(
        start_sending_gateway: StartGateway, sim: ClickSendSimulator) -> None:
    gateway = await start_sending_gateway(clicksend=FAST)
    sim.fail_next("500")
    message_id = await send_via_api(gateway)
    record = await settled(gateway, message_id, "accepted")
    assert stored(sim) == Counter([message_id])
    assert record.provider_message_id == sim.sent_messages[0]["message_id"]
    assert [h.error_code for h in record.history if h.state == State.RETRYING] == [
        "INTERNAL_SERVER_ERROR"]
    assert [r.fault for r in sim.send_requests] == ["500", None] and history_calls(sim) == 1


async def test_without_the_history_ambiguous_sends_are_retried_by_default(
        start_sending_gateway: StartGateway, sim: ClickSendSimulator) -> None:
    gateway = await start_sending_gateway(clicksend=FAST)
    failed = metric("pbxsms_provider_reconciled_total", provider="clicksend",
                    result="lookup_failed")
    sim.fail_next("store_then_500")
    sim.fail_next("500", endpoint=HISTORY_PATH)
    message_id = await send_via_api(gateway)
    record = await settled(gateway, message_id, "accepted")
    # At-least-once: ClickSend had stored the first one, so the customer got it twice.
    assert stored(sim) == Counter({message_id: 2})
    assert record.provider_message_id == sim.sent_messages[1]["message_id"]
    assert metric("pbxsms_provider_reconciled_total", provider="clicksend",
                  result="lookup_failed") - failed == 1


async def test_without_the_history_ambiguous_sends_can_be_marked_unknown(
        start_sending_gateway: StartGateway, sim: ClickSendSimulator) -> None:
    gateway = await start_sending_gateway(clicksend=f'{FAST}\non_ambiguous = "unknown"')
    sim.fail_next("store_then_500")
    sim.fail_next("500", endpoint=HISTORY_PATH)
    message_id = await send_via_api(gateway)
    record = await settled(gateway, message_id, "unknown")
    [letter] = await dead_letters(gateway, 1)
    assert letter.id == message_id and "ambiguous" in letter.reason
    assert "INTERNAL_SERVER_ERROR" in (record.history[-1].reason or "")
    await wait_until(lambda: drained(gateway, "outbound"), message="the dispatcher")
    assert len(sim.send_requests) == 1 and len(sim.sent_messages) == 1


async def test_a_timeout_not_in_the_history_is_marked_unknown(
        start_sending_gateway: StartGateway, sim: ClickSendSimulator) -> None:
    # The history is read before ClickSend finished (no settle delay): not found.
    gateway = await start_sending_gateway(
        clicksend=f'{FAST}\ntimeout = "300ms"\non_ambiguous = "unknown"')
    sim.fail_next("delay", delay=1.0)
    record = await settled(gateway, await send_via_api(gateway), "unknown")
    assert record.history[-1].error_code == "NO_ANSWER"
    assert history_calls(sim) == 1
    await wait_until(lambda: len(sim.sent_messages) == 1, message="the late send")
