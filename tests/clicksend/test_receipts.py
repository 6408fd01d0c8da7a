"""Delivery receipts: status events for our message id; final states never go back."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import ClientSession

from pbxsms.core.model.events import State, StatusEvent, new_id
from pbxsms.sim.clicksend import ClickSendSimulator
from tests.clicksend.samples import JSON, RECEIPT_JSON, receipt, stored
from tests.helpers import wait_until
from tests.support.gateway import Gateway

StartGateway = Callable[..., Awaitable[Gateway]]
SMS = "/webhook/clicksend/sms"
DLR = "/webhook/clicksend/dlr"


async def post_json(gw: Gateway, path: str, body: dict[str, Any] | str
                    ) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, str) else json.dumps(body)
    async with ClientSession() as http, http.post(gw.url + path, data=data,
                                                  headers=JSON) as resp:
        return resp.status, await resp.json()


async def accepted_by_clicksend(gw: Gateway, clicksend_id: str) -> str:
    """What the outbound work records when ClickSend takes a message; returns our id."""
    ours = new_id()
    await gw.runtime.publish_status(StatusEvent(
        id=ours, direction="outbound", state=State.ACCEPTED, channel="clicksend",
        provider_message_id=clicksend_id))

    async def indexed() -> bool:
        return await gw.runtime.status.find_by_provider_id("clicksend", clicksend_id) == ours

    await wait_until(indexed, message="the provider id index")
    return ours


async def state_of(gw: Gateway, ours: str, state: State, history: int) -> None:
    async def reached() -> bool:
        record = await gw.runtime.status.get(ours)
        return record is not None and record.state == state and len(record.history) == history

    await wait_until(reached, message=f"{ours} {state.value} with {history} entries")


async def test_the_published_sample_receipt_marks_our_message_delivered(
        start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    ours = await accepted_by_clicksend(gw, "D6D16B28-46AC-484A-AB0A-A08CD08EF75C")
    status, answer = await post_json(gw, DLR, RECEIPT_JSON.replace(
        '"custom_string": null', f'"custom_string": "{ours}"'))
    assert (status, answer) == (200, {"result": "accepted", "id": ours})
    [_, (subject, event, _)] = await stored(gw)
    assert subject == f"sms.status.{ours}"
    status_event = StatusEvent.model_validate(event)
    assert (status_event.direction, status_event.state, status_event.channel) == (
        "outbound", State.DELIVERED, "clicksend")
    assert status_event.provider_message_id == "D6D16B28-46AC-484A-AB0A-A08CD08EF75C"
    assert status_event.details["status_text"] == "Success: Message received on handset."
    await state_of(gw, ours, State.DELIVERED, 2)


async def test_receipts_follow_the_message_and_never_undo_a_final_state(
        start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    async with ClickSendSimulator() as sim:
        ours = await accepted_by_clicksend(gw, "CS-OUT-1")
        url = gw.url + DLR
        # No custom_string in these: found through ClickSend's message_id.
        assert (await sim.push_receipt(url, "CS-OUT-1", 200)).status == 200
        await state_of(gw, ours, State.SENT, 2)
        temporary = await sim.push_receipt(url, "CS-OUT-1", 300, fmt="json")
        assert temporary.status == 200
        await state_of(gw, ours, State.SENT, 3)
        assert (await sim.push_receipt(url, "CS-OUT-1", 201)).status == 200
        await state_of(gw, ours, State.DELIVERED, 4)
        late = await sim.push_receipt(url, "CS-OUT-1", 200, status_text="Sent (late)",
                                      custom_string=ours)
        assert json.loads(late.body)["result"] == "duplicate"
    record = await gw.runtime.status.get(ours)
    assert record is not None and record.state == State.DELIVERED
    retry = [h for h in record.history if h.reason and "temporary" in h.reason]
    assert len(retry) == 1 and retry[0].state == State.SENT and retry[0].error_code == "16"
    assert "Temporary network error" in (retry[0].reason or "")


async def test_a_failure_keeps_clicksends_error(start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    ours = await accepted_by_clicksend(gw, "CS-OUT-2")
    body = receipt(message_id="CS-OUT-2", status_code=301, error_code=8,
                   error_text="Unknown subscriber", custom_string=ours)
    assert (await post_json(gw, DLR, body))[0] == 200
    await state_of(gw, ours, State.FAILED, 2)
    # A late "sent" (a different status code, so a new event) is recorded, not applied.
    assert (await post_json(gw, DLR, receipt(message_id="CS-OUT-2", status_code="200",
                                             custom_string=ours)))[0] == 200
    await state_of(gw, ours, State.FAILED, 3)
    record = await gw.runtime.status.get(ours)
    assert record is not None
    failed = [h for h in record.history if h.state == State.FAILED]
    assert (failed[0].error_code, failed[0].reason) == ("8", "Unknown subscriber")


async def test_receipt_shaped_payloads_are_accepted_at_the_sms_url(
        start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    ours = await accepted_by_clicksend(gw, "CS-OUT-3")
    form = (f"message_id=CS-OUT-3&status_code=201&status_text=Delivered&custom_string={ours}"
            "&subaccount_id=123456")
    async with ClientSession() as http:
        async with http.post(gw.url + SMS, data=form, headers={
                "Content-Type": "application/x-www-form-urlencoded"}) as resp:
            assert (resp.status, (await resp.json())["id"]) == (200, ours)
        # FS PBX's shape: only error_text, no status code: recorded, but not as final.
        async with http.get(f"{gw.url}{SMS}?message_id=CS-OUT-3&error_text=Odd&"
                            f"custom_string={ours}") as resp:
            assert resp.status == 200
    subjects_states = [(s, e["state"]) for s, e, _ in await stored(gw)]
    assert subjects_states == [(f"sms.status.{ours}", "accepted"),
                               (f"sms.status.{ours}", "delivered"),
                               (f"sms.status.{ours}", "unknown")]


async def test_a_receipt_for_no_message_of_ours_is_answered_and_counted(
        start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    status, answer = await post_json(gw, DLR, RECEIPT_JSON)
    assert status == 200
    assert answer["result"] == "unmatched"
    assert answer["message_id"] == "D6D16B28-46AC-484A-AB0A-A08CD08EF75C"
    # A custom_string that is not one of our ids is no identification either.
    status, answer = await post_json(gw, DLR, receipt(custom_string="crm-42"))
    assert (status, answer["result"]) == (200, "unmatched")
    assert await stored(gw) == []
    async with ClientSession() as http, http.get(gw.url + "/metrics") as resp:
        assert ('pbxsms_webhooks_total{kind="receipt",provider="clicksend",'
                'result="unmatched"}') in await resp.text()


async def test_bad_receipts_are_refused(start_gateway: StartGateway) -> None:
    gw = await start_gateway(env={"CLICKSEND_SUBACCOUNT_ID": "123456"})
    ours = new_id()
    cases = [
        (receipt(subaccount_id=1, custom_string=ours), 403, "subaccount_id"),
        (receipt(message_id=None, custom_string=ours), 400, None),
        (receipt(message_id={"id": 1}, custom_string=ours), 400, "message_id"),
        ({"from": "+61429912603", "to": "+61477485926", "body": "hi",
          "subaccount_id": 123456}, 400, None),  # an inbound SMS sent to the receipt URL
    ]
    for body, status, field in cases:
        code, answer = await post_json(gw, DLR, body)
        assert (code, answer.get("field")) == (status, field), body
    assert await stored(gw) == []


async def test_a_forged_custom_string_neither_fails_a_message_nor_creates_one(
        start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    real = await accepted_by_clicksend(gw, "CS-REAL-1")
    unknown = new_id()
    # A 301 naming our real message in custom_string but another message_id, and one
    # naming an id we never used: both matched against the stored provider id, neither
    # is ours.
    for forged, clicksend_id in ((real, "CS-FORGED-1"), (unknown, "CS-FORGED-2")):
        status, answer = await post_json(gw, DLR, receipt(
            message_id=clicksend_id, status_code=301, error_text="Forged",
            custom_string=forged))
        assert (status, answer["result"]) == (200, "unmatched"), answer
    assert await stored(gw, f"sms.status.{unknown}") == []
    assert len(await stored(gw, f"sms.status.{real}")) == 1  # its `accepted` only
    # The real receipt, which echoes the same custom_string, is applied.
    status, answer = await post_json(gw, DLR, receipt(message_id="CS-REAL-1",
                                                      status_code=301, custom_string=real))
    assert (status, answer) == (200, {"result": "accepted", "id": real})
    await state_of(gw, real, State.FAILED, 2)
    assert await gw.runtime.status.get(unknown) is None


async def test_a_receipt_ahead_of_its_provider_id_is_retried_not_applied(
        start_gateway: StartGateway) -> None:
    # Queued, ClickSend's id not recorded yet: the receipt cannot be checked, so 503
    # (ClickSend retries) rather than trusting custom_string alone.
    gw = await start_gateway()
    pending = new_id()
    await gw.runtime.status.apply(StatusEvent(id=pending, direction="outbound",
                                              state=State.QUEUED, channel="clicksend"))
    status, _ = await post_json(gw, DLR, receipt(message_id="CS-LATER-1", status_code=301,
                                                 custom_string=pending))
    assert status == 503
    record = await gw.runtime.status.get(pending)
    assert record is not None and record.state == State.QUEUED
