"""Sending through ClickSend (the simulator) end to end: batches, results, faults, pauses."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import ClientSession

from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.bus.publish import PublishError
from pbxsms.core.model.events import OutboundRequest, State, StatusEvent, new_id
from pbxsms.core.registry import OutboundMessage, Outcome
from pbxsms.core.stores.states import bucket_name
from pbxsms.core.stores.status import StatusRecord, apply
from pbxsms.sim.clicksend import TEST_ACCOUNT_KEY, ClickSendSimulator
from tests.helpers import basic_auth, free_port, wait_until
from tests.outbound.sending import (
    KEY,
    OURS,
    USER,
    dead_letters,
    drained,
    metric,
    recipient,
    send_via_api,
)
from tests.support.carriers import settled
from tests.support.counting import Requests, calls_of
from tests.support.gateway import Gateway, StartGateway

# Messages posted together travel in one call even on a slow machine.
ONE_BATCH = 'flush_delay = "500ms"'


async def duplicates_of(gateway: Gateway, request: OutboundRequest) -> float:
    """Request `request` and wait until the dispatcher took it: how many times it counted
    it as a duplicate (already accepted)."""
    before = metric("pbxsms_outbound_messages_total", provider="clicksend",
                    outcome="duplicate")
    await gateway.runtime.publish("sms.outbound", request, request.id)
    await wait_until(lambda: drained(gateway, "outbound"), message="the dispatcher")
    return metric("pbxsms_outbound_messages_total", provider="clicksend",
                  outcome="duplicate") - before


async def test_a_lone_reply_is_accepted_with_clicksends_message_id(
        start_sending_gateway: StartGateway, sim: ClickSendSimulator) -> None:
    gateway = await start_sending_gateway()
    message_id = await send_via_api(gateway, "Thanks, see you at 3")
    record = await settled(gateway, message_id, "accepted")
    [sent] = sim.sent_messages
    assert sent["custom_string"] == message_id
    assert sent["from"] == OURS and sent["to"] == recipient(1)
    assert record.provider_message_id == sent["message_id"]
    assert record.segments == 1
    assert [h.state.value for h in record.history] == ["queued", "sending", "accepted"]
    assert sim.send_requests[0].authorization == basic_auth(USER, KEY)

    async def indexed() -> bool:
        # The fold writes the record first, then the provider-id index.
        found = await gateway.runtime.status.find_by_provider_id("clicksend",
                                                                 sent["message_id"])
        return found == message_id

    await wait_until(indexed, message="ClickSend's message id indexed to ours")


def requests_about(seen: list[tuple[str, bytes]], message_id: str) -> list[str]:
    """The requests the gateway made for one send among what the server took: those
    naming the message (its writes, events and index entries) and the opt-out read;
    not the request itself, its delivery, the answers or acks."""
    return [subject for subject, data in seen
            if not subject.startswith(("_INBOX.", "$JS.ACK.", "$JS.EVENT.", "sms.outbound"))
            and (message_id in subject or message_id.encode() in data
                 or subject == "$JS.API.STREAM.MSG.GET.KV_sms_optouts")]


async def test_a_quickly_accepted_send_costs_7_requests_and_no_sending_index_entry(
        start_sending_gateway: StartGateway, sim: ClickSendSimulator,
        nats_server: EmbeddedNats) -> None:
    # `sending` enters the state index only once a message has lingered in it
    # (core/stores/states.py LINGER): a send accepted at once writes neither the entry
    # nor its erasure, 2 of the 9 requests it cost before.
    gateway = await start_sending_gateway()
    gateway.runtime.status.linger = 600.0  # nothing lingers that long here
    request = OutboundRequest(**{"from": OURS}, to=recipient(1), body="quick")
    async with Requests(nats_server.url) as spy:
        await gateway.runtime.publish("sms.outbound", request, request.id)
        # Acked once `accepted` is stored and folded; read nothing meanwhile.
        await wait_until(lambda: len(sim.sent_messages) == 1, message="the send")
        await wait_until(lambda: drained(gateway, "outbound"), message="the dispatcher")
        made = requests_about(await spy.until_now(), request.id)
    await settled(gateway, request.id, "accepted")
    [sent] = sim.sent_messages
    assert sorted(made) == sorted([
        "$JS.API.STREAM.MSG.GET.KV_sms_optouts",  # the opt-out read
        f"$KV.sms_messages.{request.id}", f"sms.status.{request.id}",  # sending
        f"$KV.sms_messages.{request.id}", f"sms.status.{request.id}",  # accepted ...
        f"$KV.{bucket_name(State.ACCEPTED)}.{request.id}",  # ... its index entry
        f"$KV.sms_provider_ids.clicksend.{sent['message_id']}",  # ... its provider id
    ]), made
    assert not [s for s in made if bucket_name(State.SENDING) in s]


async def test_a_send_the_carrier_holds_is_listed_in_sending_then_leaves_it(
        start_sending_gateway: StartGateway, sim: ClickSendSimulator) -> None:
    gateway = await start_sending_gateway()
    store = gateway.runtime.status
    store.linger = 0.2
    sim.fail_next("delay", delay=2.0)  # ClickSend answers after 2 s
    message_id = await send_via_api(gateway, "held at the carrier")

    async def listed() -> list[str]:
        return [r.id for r in (await store.in_state(State.SENDING)).records]

    async def held() -> bool:
        return await listed() == [message_id]

    await wait_until(held, message="the held send listed in sending")
    assert not sim.sent_messages, "listed only while the carrier held it"
    await settled(gateway, message_id, "accepted")
    assert store.states is not None
    # Its entry was written, so its erasure was too: the index holds nothing stale.
    assert (await store.states.page(State.SENDING)).entries == []


async def test_2500_queued_messages_go_out_in_3_calls_and_end_accepted(
        start_sending_gateway: StartGateway, sim: ClickSendSimulator) -> None:
    first = await start_sending_gateway(clicksend=ONE_BATCH)
    # Queue while no dispatcher runs, as after an outage; then a gateway picks them up.
    await first.runtime.stop_consumers()
    requests = [OutboundRequest(**{"from": OURS}, to=recipient(i), body=f"Reminder {i}")
                for i in range(2500)]
    for chunk in range(0, len(requests), 250):
        await asyncio.gather(*(first.runtime.publish("sms.outbound", r, r.id)
                               for r in requests[chunk:chunk + 250]))
    started = time.monotonic()
    second = await start_sending_gateway(clicksend=ONE_BATCH)
    await wait_until(lambda: len(sim.sent_messages) >= 2500, 60, "2500 messages at ClickSend")
    calls = sim.send_requests
    assert len(calls) <= 3, f"calls of {[len(c.custom_strings) for c in calls]}"
    assert all(call.authorization == basic_auth(USER, KEY) for call in calls)
    assert all(len(call.custom_strings) <= 1000 for call in calls)
    ids = {r.id for r in requests}
    assert sorted(m["custom_string"] for m in sim.sent_messages) == sorted(ids)
    clicksend_ids = {m["custom_string"]: m["message_id"] for m in sim.sent_messages}

    # Every request handled: its outcome published and folded into its record before the ack.
    await wait_until(lambda: drained(second, "outbound"), 60, "the dispatcher to finish")
    records = await asyncio.gather(*(second.runtime.status.get(i) for i in ids))
    assert all(r is not None and r.state == State.ACCEPTED
               and r.provider_message_id == clicksend_ids[r.id] for r in records)
    print(f"2500 messages accepted in {time.monotonic() - started:.1f}s")


async def test_our_json_matches_the_official_sdk(start_sending_gateway: StartGateway,
                                                 sim: ClickSendSimulator) -> None:
    models = pytest.importorskip("clicksend.models")
    gateway = await start_sending_gateway()
    message_id = await send_via_api(gateway, "Grüße from the front desk {ok}", to=recipient(2))
    await settled(gateway, message_id, "accepted")
    [call] = sim.send_requests
    sdk = models.SendSmsRequest(messages=[models.SendSmsRequestMessagesInner(
        to=recipient(2), var_from=OURS, body="Grüße from the front desk {ok}",
        source="pbxsms", custom_string=message_id)])
    assert call.body == sdk.to_dict()
    assert models.SendSmsRequest.from_dict(call.body).to_dict() == call.body


async def test_429_5xx_and_dropped_connections_end_accepted_exactly_once(
        start_sending_gateway: StartGateway, sim: ClickSendSimulator) -> None:
    gateway = await start_sending_gateway(clicksend=ONE_BATCH)
    sim.fail_next("429", retry_after=1)
    sim.fail_next("500")
    sim.fail_next("drop")
    ids = await asyncio.gather(*(send_via_api(gateway, f"Hi {n}", to=recipient(n))
                                 for n in range(3)))
    records = [await settled(gateway, i, "accepted") for i in ids]
    assert sorted(m["custom_string"] for m in sim.sent_messages) == sorted(ids)
    assert [r.fault for r in sim.send_requests[:3]] == ["429", "500", "drop"]
    after_429 = sim.send_requests[1].received_at - sim.send_requests[0].received_at
    assert after_429 >= 0.95, f"Retry-After: 1 not honoured ({after_429:.2f}s)"
    codes = [h.error_code for h in records[0].history if h.state == State.RETRYING]
    assert codes[0] == "HTTP_TOO_MANY_REQUESTS"
    assert {"INTERNAL_SERVER_ERROR", "NO_ANSWER"} & set(codes[1:])


async def test_permanent_codes_fail_at_once_with_their_code(
        start_sending_gateway: StartGateway, sim: ClickSendSimulator) -> None:
    gateway = await start_sending_gateway(clicksend=ONE_BATCH)
    codes = ["INVALID_RECIPIENT", "COUNTRY_NOT_ENABLED", "INVALID_SENDER_ID", "EMPTY_MESSAGE"]
    for n, code in enumerate(codes):
        sim.force_status(recipient(n), code)
    ids = await asyncio.gather(*(send_via_api(gateway, to=recipient(n))
                                 for n in range(len(codes) + 1)))
    for message_id, code in zip(ids, codes, strict=False):
        record = await settled(gateway, message_id, "failed")
        assert record.history[-1].error_code == code
        assert [h.state.value for h in record.history] == ["queued", "sending", "failed"]
    await settled(gateway, ids[-1], "accepted")  # the good one of the same batch
    letters = await dead_letters(gateway, len(codes))
    assert {letter.id: letter.reason.split(":")[0] for letter in letters} == dict(
        zip(ids, codes, strict=False))
    assert len(sim.send_requests) == 1, "a permanent code must not be retried"


async def test_throttled_is_retried_later(start_sending_gateway: StartGateway,
                                          sim: ClickSendSimulator) -> None:
    gateway = await start_sending_gateway()
    sim.force_status(recipient(5), "THROTTLED")
    message_id = await send_via_api(gateway, to=recipient(5))
    await wait_until(lambda: len(sim.send_requests) == 1, message="the first try")
    await settled(gateway, message_id, "retrying")
    sim.force_status(recipient(5), None)
    record = await settled(gateway, message_id, "accepted")
    assert [h.error_code for h in record.history if h.state == State.RETRYING] == [
        "THROTTLED"]


async def test_out_of_credit_fails_loudly(start_sending_gateway: StartGateway,
                                          sim: ClickSendSimulator,
                                          caplog: pytest.LogCaptureFixture) -> None:
    # ClickSend's documented test account `nocredit`.
    gateway = await start_sending_gateway(env={"CLICKSEND_USERNAME": "nocredit",
                                               "CLICKSEND_API_KEY": TEST_ACCOUNT_KEY})
    before = metric("pbxsms_provider_account_errors_total", provider="clicksend",
                    code="INSUFFICIENT_CREDIT")
    message_id = await send_via_api(gateway)
    record = await settled(gateway, message_id, "failed")
    assert record.history[-1].error_code == "INSUFFICIENT_CREDIT"
    assert "out of credit" in (record.history[-1].reason or "")
    assert metric("pbxsms_provider_account_errors_total", provider="clicksend",
                  code="INSUFFICIENT_CREDIT") == before + 1
    assert any(r.levelname == "ERROR" and "INSUFFICIENT_CREDIT" in r.getMessage()
               for r in caplog.records)


async def test_a_wrong_api_key_holds_the_messages_until_the_reload_sends_each_once(
        start_sending_gateway: StartGateway, sim: ClickSendSimulator) -> None:
    gateway = await start_sending_gateway(env={"CLICKSEND_API_KEY": "wrong-key"},
                                          clicksend=ONE_BATCH)
    ids = await asyncio.gather(*(send_via_api(gateway, f"Hi {n}", to=recipient(n))
                                 for n in range(50)))
    for message_id in ids:
        record = await settled(gateway, message_id, "retrying")
        reason = record.history[-1].reason or ""
        assert "held" in reason and "CLICKSEND_API_KEY" in reason, reason
        assert "wrong-key" not in reason
    async with ClientSession() as http, http.get(f"{gateway.url}/readyz") as response:
        # Sending is paused, receiving is not: still ready, and it says what is wrong
        # and how many messages wait.
        assert response.status == 200
        body = await response.json()
        assert body["status"] == "degraded", body
        assert any("CLICKSEND_API_KEY" in r and "paused" in r for r in body["degraded"]), body
        assert any(r.startswith("outbound: 50 message(s) held") for r in body["degraded"]), body
    # While paused, nothing more reaches ClickSend: the one refused call.
    assert len(sim.send_requests) == 1
    # Fixing the key and reloading ends the pause: every held message goes out once.
    env_file = gateway.runtime.config.env_file
    assert env_file is not None
    env_file.write_text(env_file.read_text().replace("wrong-key", KEY))
    await gateway.server.reload()
    for message_id in ids:
        await settled(gateway, message_id, "accepted")
    sent = sorted(str(m["custom_string"]) for m in sim.sent_messages)
    assert sent == sorted(ids)
    await wait_until(lambda: drained(gateway, "outbound"), message="the dispatcher")
    with pytest.raises(AssertionError, match="0 of 1 dead letters"):
        await dead_letters(gateway, 1, timeout=0.5)
    async with ClientSession() as http, http.get(f"{gateway.url}/readyz") as response:
        assert (response.status, await response.json()) == (200, {"status": "ready"})


async def test_a_redelivered_request_already_accepted_is_not_sent_again(
        start_sending_gateway: StartGateway, sim: ClickSendSimulator) -> None:
    gateway = await start_sending_gateway()
    request = OutboundRequest(**{"from": OURS}, to=recipient(1), body="sent before a crash")
    await gateway.runtime.publish_status(StatusEvent(
        id=request.id, direction="outbound", state=State.ACCEPTED, channel="clicksend",
        provider_message_id="1EE7BD80-F28F-6D4A-B098-CB63CDB0DC73"))
    await settled(gateway, request.id, "accepted")
    assert await duplicates_of(gateway, request) == 1
    assert sim.send_requests == []


async def test_a_first_attempt_is_sent_without_reading_its_record(
        start_sending_gateway: StartGateway, sim: ClickSendSimulator) -> None:
    # The record as this process wrote it (`queued` by the API) or none at all (a
    # request published on sms.outbound): its compare-and-set proves it was never sent.
    gateway = await start_sending_gateway()
    runtime = gateway.runtime
    with calls_of(runtime.status, "get") as gets, \
            calls_of(runtime.status, "catch_up") as catch_ups:
        queued_here = await send_via_api(gateway, "queued here")
        published = OutboundRequest(**{"from": OURS}, to=recipient(2), body="published")
        await runtime.publish("sms.outbound", published, published.id)
        await wait_until(lambda: len(sim.sent_messages) == 2, message="both sent")
        await wait_until(lambda: drained(gateway, "outbound"), message="the dispatcher")
    assert gets == [] and catch_ups == []
    for message_id, states in ((queued_here, ["queued", "sending", "accepted"]),
                               (published.id, ["sending", "accepted"])):
        record = await settled(gateway, message_id, "accepted")
        assert [h.state.value for h in record.history] == states
    assert sorted(str(m["custom_string"]) for m in sim.sent_messages) == sorted(
        [queued_here, published.id])


async def test_an_acceptance_not_folded_by_another_instance_is_found(
        start_sending_gateway: StartGateway, sim: ClickSendSimulator) -> None:
    # This process knows the record as `queued`; another instance then stored its
    # `sending`, had it accepted and died before folding `accepted`. The record is not as
    # known here, so the dispatcher reads it with its events before anything is sent.
    gateway = await start_sending_gateway()
    runtime = gateway.runtime
    request = OutboundRequest(**{"from": OURS}, to=recipient(1), body="sent elsewhere")

    def event(state: State, **fields: object) -> StatusEvent:
        return StatusEvent(id=request.id, direction="outbound", state=state,
                           channel="clicksend", attempt=1, **fields)

    await runtime.publish_status(event(State.QUEUED))
    elsewhere = apply(await runtime.status.get(request.id), event(State.SENDING))
    await runtime.status.messages.put(request.id, elsewhere.model_dump_json().encode())
    accepted = event(State.ACCEPTED, provider_message_id="1EE7BD80-F28F-6D4A-B098")
    await runtime.publish(f"sms.status.{request.id}", accepted, "accepted elsewhere")
    assert await duplicates_of(gateway, request) == 1
    assert sim.send_requests == []
    record = await settled(gateway, request.id, "accepted")
    assert [h.state.value for h in record.history] == ["queued", "sending", "accepted"]


async def test_a_record_that_shows_an_attempt_is_read_with_its_events(
        start_sending_gateway: StartGateway, sim: ClickSendSimulator) -> None:
    # This process wrote the record last, with a `sending` in it: that attempt may have
    # been accepted with its fold lost (here: `accepted` stored on the stream only), so
    # the record is read with its events although it is unchanged since.
    gateway = await start_sending_gateway()
    runtime = gateway.runtime
    request = OutboundRequest(**{"from": OURS}, to=recipient(1), body="sent before")
    await runtime.publish_status(StatusEvent(id=request.id, direction="outbound",
                                             state=State.SENDING, channel="clicksend",
                                             attempt=1))
    accepted = StatusEvent(id=request.id, direction="outbound", state=State.ACCEPTED,
                           channel="clicksend", attempt=1,
                           provider_message_id="1EE7BD80-F28F-6D4A-B098-CB63CDB0DC75")
    await runtime.publish(f"sms.status.{request.id}", accepted, "accepted, not folded")
    assert await duplicates_of(gateway, request) == 1
    assert sim.send_requests == []
    # And it is folded now: the record as stored, the state index and receipt matching
    # all know it was accepted (else it would be listed as sending for ever, and a
    # carrier that echoes nothing of ours could not match its receipts).
    value, _ = await runtime.status.messages.get(request.id)
    assert value is not None
    assert StatusRecord.model_validate_json(value).state == State.ACCEPTED
    assert await runtime.status.find_by_provider_id(
        "clicksend", "1EE7BD80-F28F-6D4A-B098-CB63CDB0DC75") == request.id
    assert [r.id for r in (await runtime.status.in_state(State.ACCEPTED)).records] == [
        request.id]
    assert (await runtime.status.in_state(State.SENDING)).records == []


async def test_an_accepted_request_that_could_not_be_sent_now_is_not_refused(
        start_sending_gateway: StartGateway, sim: ClickSendSimulator) -> None:
    # Redelivered after the rules changed (here: no number for its extension): it was
    # accepted, so it is a duplicate, not a failure.
    gateway = await start_sending_gateway()
    request = OutboundRequest(extension="999", to=recipient(1), body="accepted before")
    await gateway.runtime.publish_status(StatusEvent(
        id=request.id, direction="outbound", state=State.ACCEPTED, channel="clicksend",
        provider_message_id="1EE7BD80-F28F-6D4A-B098-CB63CDB0DC74"))
    assert await duplicates_of(gateway, request) == 1
    record = await settled(gateway, request.id, "accepted")
    assert [h.state.value for h in record.history] == ["accepted"]
    with pytest.raises(AssertionError, match="0 of 1 dead letters"):
        await dead_letters(gateway, 1, timeout=0.5)


async def test_a_request_accepted_here_is_not_sent_again_before_its_status_is_stored(
        start_sending_gateway: StartGateway, sim: ClickSendSimulator) -> None:
    # The same id published again (another Nats-Msg-Id, e.g. after the duplicate window)
    # while its record does not show the acceptance (the status fold lags, or the
    # `accepted` publish failed): the dispatcher remembers what it accepted.
    gateway = await start_sending_gateway()
    request = OutboundRequest(**{"from": OURS}, to=recipient(1), body="only once")
    await gateway.runtime.publish("sms.outbound", request, request.id)
    accepted = await settled(gateway, request.id, "accepted")
    await gateway.runtime.status.messages.delete(request.id)
    before = metric("pbxsms_outbound_messages_total", provider="clicksend",
                    outcome="duplicate")
    await gateway.runtime.publish("sms.outbound", request, f"{request.id}-again")
    await wait_until(lambda: metric("pbxsms_outbound_messages_total", provider="clicksend",
                                    outcome="duplicate") == before + 1,
                     message="the repeat recognised")
    await wait_until(lambda: drained(gateway, "outbound"), message="the dispatcher")
    assert [m["custom_string"] for m in sim.sent_messages] == [request.id]
    assert accepted.provider_message_id == sim.sent_messages[0]["message_id"]


async def test_a_sending_status_not_stored_is_retried_before_anything_is_sent(
        start_sending_gateway: StartGateway, sim: ClickSendSimulator,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # `sending` is stored before the request joins a batch: when its publish fails, the
    # request is retried and nothing reaches the carrier until it is stored.
    gateway = await start_sending_gateway()
    refused: list[tuple[str, int]] = []  # the id, and how many the carrier had by then

    def failing(publish: Callable[..., Awaitable[object]]) -> Callable[..., Awaitable[object]]:
        async def publish_or_fail(status: StatusEvent, *args: object,
                                  **kwargs: object) -> object:
            if status.state == State.SENDING and len(refused) < 2:
                refused.append((status.id, len(sim.sent_messages)))
                raise PublishError("stream unavailable (injected)")
            return await publish(status, *args, **kwargs)

        return publish_or_fail

    # Whichever way `sending` is stored (without a read of the record, or after one).
    for name in ("publish_status", "publish_status_unchanged"):
        monkeypatch.setattr(gateway.runtime, name, failing(getattr(gateway.runtime, name)))
    request = OutboundRequest(**{"from": OURS}, to=recipient(1), body="sent once")
    await gateway.runtime.publish("sms.outbound", request, request.id)
    record = await settled(gateway, request.id, "accepted")
    await wait_until(lambda: drained(gateway, "outbound"), message="the dispatcher")
    assert refused == [(request.id, 0)] * 2
    assert [m["custom_string"] for m in sim.sent_messages] == [request.id]
    assert [h.state for h in record.history] == [State.SENDING, State.ACCEPTED]


async def test_pbx_services_publish_on_nats(start_sending_gateway: StartGateway,
                                            sim: ClickSendSimulator) -> None:
    gateway = await start_sending_gateway(env={"PBXSMS_DEFAULT_REGION": "AU"})
    runtime = gateway.runtime
    by_extension = OutboundRequest(extension="101", to="0412 345 678", body="From 101",
                                   source="crm", provider=None)
    bad_number = OutboundRequest(**{"from": OURS}, to="12", body="x")
    no_number = OutboundRequest(extension="999", to=recipient(1), body="x")
    for request in (by_extension, bad_number, no_number):
        await runtime.publish("sms.outbound", request, request.id)
    await settled(gateway, by_extension.id, "accepted")
    assert sim.sent_messages[0]["from"] == OURS
    assert sim.sent_messages[0]["to"] == "+61412345678"  # PBXSMS_DEFAULT_REGION=AU
    failed = await settled(gateway, bad_number.id, "failed")
    assert failed.history[-1].error_code == "INVALID_REQUEST"
    unroutable = await settled(gateway, no_number.id, "unroutable")
    assert "extension 999" in (unroutable.history[-1].reason or "")
    letters = await dead_letters(gateway, 2)
    assert {letter.id for letter in letters} == {bad_number.id, no_number.id}


async def test_requests_per_second_limits_calls_per_account(
        start_sending_gateway: StartGateway, sim: ClickSendSimulator) -> None:
    gateway = await start_sending_gateway(clicksend="requests_per_second = 2")
    provider = gateway.runtime.providers["clicksend"]
    messages = [OutboundMessage(id=new_id(), from_=OURS, to=recipient(n), body="hi",
                                segments=1) for n in range(4)]
    results = await asyncio.gather(*(provider.send_batch([m]) for m in messages))
    assert all(r[0].outcome == Outcome.ACCEPTED for r in results)
    times = sorted(r.received_at for r in sim.send_requests)
    # A burst of 2, then one call per half second.
    assert times[3] - times[0] >= 0.9, [round(t - times[0], 2) for t in times]


async def test_connection_errors_retry_until_clicksend_is_reachable(
        start_sending_gateway: StartGateway) -> None:
    port = free_port()
    gateway = await start_sending_gateway(
        env={"CLICKSEND_BASE_URL": f"http://127.0.0.1:{port}"})
    message_id = await send_via_api(gateway)
    record = await settled(gateway, message_id, "retrying")
    assert record.history[-1].error_code == "NOT_SENT"
    late = ClickSendSimulator([(USER, KEY)])
    await late.start(port=port)
    try:
        await settled(gateway, message_id, "accepted")
        assert [m["custom_string"] for m in late.sent_messages] == [message_id]
    finally:
        await late.stop()


async def test_a_suspended_account_pauses_sending(start_sending_gateway: StartGateway,
                                                  sim: ClickSendSimulator) -> None:
    # ClickSend's documented test account `banned` answers 403.
    gateway = await start_sending_gateway(env={"CLICKSEND_USERNAME": "banned",
                                               "CLICKSEND_API_KEY": TEST_ACCOUNT_KEY},
                                          toml='[outbound]\nhold_while_paused = "2s"')
    message_id = await send_via_api(gateway)
    record = await settled(gateway, message_id, "retrying")
    assert record.history[-1].error_code == "FORBIDDEN"
    assert gateway.runtime.plugins.degraded(gateway.runtime)  # paused, said so
    assert gateway.runtime.readiness() == []  # receiving goes on
    # Held no longer than `hold_while_paused`: then failed, with the reason, for good.
    record = await settled(gateway, message_id, "failed")
    assert "suspended" in (record.history[-1].reason or "")
    assert "held 2s" in (record.history[-1].reason or "")
    (letter,) = await dead_letters(gateway, 1)
    assert letter.id == message_id
