"""Inbound SMS webhooks: every webhook type becomes exactly one durable, correct event."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp import ClientSession, web
from hypothesis import given
from hypothesis import strategies as st

from pbxsms.core.inbound.accept import content_key
from pbxsms.core.inbound.routing import INBOUND_ID_NAMESPACE, inbound_id
from pbxsms.core.model.events import InboundMessage, State, StatusEvent, new_id
from pbxsms.plugins.clicksend.inbound import form_fields, parse_inbound
from pbxsms.plugins.clicksend.webhooks import stored_answer
from pbxsms.sim.clicksend import ClickSendSimulator
from tests.clicksend.samples import (
    FORM,
    INBOUND_FORM,
    INBOUND_JSON,
    JSON,
    SAMPLE_MESSAGE_ID,
    SAMPLE_TIMESTAMP,
    stored,
)
from tests.helpers import wait_until
from tests.support.gateway import Gateway

StartGateway = Callable[..., Awaitable[Gateway]]
SMS = "/webhook/clicksend/sms"


async def post(gw: Gateway, data: str | bytes, headers: dict[str, str],
               path: str = SMS) -> tuple[int, dict[str, Any]]:
    async with ClientSession() as http, http.post(gw.url + path, data=data,
                                                  headers=headers) as resp:
        return resp.status, await resp.json()


async def get(gw: Gateway, query: str, path: str = SMS) -> tuple[int, dict[str, Any]]:
    async with ClientSession() as http, http.get(f"{gw.url}{path}?{query}") as resp:
        return resp.status, await resp.json()


def sample_event_is_correct(event: dict[str, Any]) -> None:
    message = InboundMessage.model_validate(event)
    assert message.id == str(uuid.uuid5(INBOUND_ID_NAMESPACE, f"clicksend:{SAMPLE_MESSAGE_ID}"))
    assert (message.provider, message.provider_message_id) == ("clicksend", SAMPLE_MESSAGE_ID)
    assert (message.from_, message.to) == ("+61429912603", "+61477485926")
    assert message.body == "trigger reply"
    assert message.sent_at == datetime.fromtimestamp(SAMPLE_TIMESTAMP, UTC)
    assert message.reply_to_provider_id == "1F12D717-947A-6FBC-BBFE-D14C2927CEEF"
    assert message.reply_to_id is None
    assert message.extra == {"user_id": "304497", "subaccount_id": "745158"}
    assert message.route is not None
    assert (message.route.number, message.route.extension) == ("+61477485926", "201")


@pytest.mark.parametrize("webhook_type", ["json", "post", "get"])
async def test_each_published_sample_becomes_exactly_one_correct_event(
        start_gateway: StartGateway, webhook_type: str) -> None:
    gw = await start_gateway()
    if webhook_type == "json":
        status, answer = await post(gw, INBOUND_JSON, JSON)
    elif webhook_type == "post":
        status, answer = await post(gw, INBOUND_FORM, FORM)
    else:
        status, answer = await get(gw, INBOUND_FORM)
    assert (status, answer["result"]) == (200, "accepted")
    [(subject, event, msg_id)] = await stored(gw)
    assert (subject, msg_id) == ("sms.inbound.clicksend", f"clicksend:{SAMPLE_MESSAGE_ID}")
    sample_event_is_correct(event)
    assert event["id"] == answer["id"]


async def test_the_same_payload_three_times_is_one_event(start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    answers = [await post(gw, INBOUND_JSON, JSON) for _ in range(3)]
    assert [status for status, _ in answers] == [200, 200, 200]
    assert [a["result"] for _, a in answers] == ["accepted", "duplicate", "duplicate"]
    assert len({a["id"] for _, a in answers}) == 1
    # The same message in the other two shapes (ClickSend retrying after a rule change).
    assert (await post(gw, INBOUND_FORM, FORM))[1]["result"] == "duplicate"
    assert (await get(gw, INBOUND_FORM))[1]["result"] == "duplicate"
    assert len(await stored(gw)) == 1


async def test_a_repeat_to_another_number_does_not_mark_the_stored_message_unroutable(
        start_gateway: StartGateway) -> None:
    """The message stored under an id counts: a repeat with other content (here a `to`
    that is not ours) is a duplicate, and publishes no `unroutable` status about it."""
    gw = await start_gateway()
    assert (await post(gw, INBOUND_JSON, JSON))[1]["result"] == "accepted"
    changed = json.loads(INBOUND_JSON)
    changed["to"] = "+61400000999"
    status, answer = await post(gw, json.dumps(changed), JSON)
    assert (status, answer["result"]) == (200, "duplicate")
    assert [subject for subject, _, _ in await stored(gw)] == ["sms.inbound.clicksend"]


def test_a_replay_after_the_duplicate_window_gets_the_same_id() -> None:
    # JetStream forgets a Nats-Msg-Id after the window; our id does not change, so
    # consumers can still recognise the replay by id.
    first = parse_inbound(json.loads(INBOUND_JSON), "US")
    again = parse_inbound(json.loads(INBOUND_JSON), "US")
    assert first.dedupe_key == again.dedupe_key == f"clicksend:{SAMPLE_MESSAGE_ID}"
    assert inbound_id(first.dedupe_key) == inbound_id(again.dedupe_key)
    assert uuid.UUID(inbound_id(first.dedupe_key)).version == 5
    # Other services recompute it from docs/events.md.
    docs = Path(__file__).resolve().parents[2] / "docs" / "events.md"
    assert str(INBOUND_ID_NAMESPACE) in docs.read_text()


@pytest.mark.parametrize("webhook_type", ["post", "json", "get"])
async def test_simulator_pushes_of_every_webhook_type_are_stored(
        start_gateway: StartGateway, webhook_type: Any) -> None:
    gw = await start_gateway()
    async with ClickSendSimulator() as sim:
        result = await sim.push_inbound(gw.url + SMS, "+61429912603", "+61477485926",
                                        "Can I move my 3pm? ✓", webhook_type=webhook_type,
                                        message_id="A1B2C3D4-0000-4000-8000-000000000001")
    assert result.status == 200, result.body
    [(_, event, msg_id)] = await stored(gw)
    assert msg_id == "clicksend:A1B2C3D4-0000-4000-8000-000000000001"
    assert (event["from"], event["to"], event["body"]) == (
        "+61429912603", "+61477485926", "Can I move my 3pm? ✓")
    assert event["extra"]["subaccount_id"] == str(result.payload["subaccount_id"])


async def test_aliases_numbers_and_the_default_region(start_gateway: StartGateway) -> None:
    gw = await start_gateway(env={"PBXSMS_DEFAULT_REGION": "AU"})
    # Only the legacy aliases, national numbers, and the id as a number.
    form = "sms=0429912603&originalsenderid=(04)7748+5926&message=hi&message_id=12345"
    assert (await post(gw, form, FORM))[0] == 200
    # JSON numbers instead of strings.
    body = {"from": 61429912603, "to": 61477485926, "body": 42, "message_id": 6789,
            "timestamp": str(SAMPLE_TIMESTAMP), "subaccount_id": 745158}
    assert (await post(gw, json.dumps(body), JSON))[0] == 200
    first, second = [event for _, event, _ in await stored(gw)]
    assert (first["from"], first["to"], first["body"]) == ("+61429912603", "+61477485926", "hi")
    assert first["provider_message_id"] == "12345"
    assert (second["from"], second["to"], second["body"]) == (
        "+61429912603", "+61477485926", "42")
    assert second["extra"] == {"subaccount_id": "745158"}


async def test_the_text_is_never_taken_from_original_body(start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    body = {"from": "+61429912603", "to": "+61477485926", "body": "", "message": "",
            "original_body": "Your appointment is at 3pm", "message_id": "EMPTY-1"}
    assert (await post(gw, json.dumps(body), JSON))[0] == 200
    del body["body"], body["message"]
    body["message_id"] = "EMPTY-2"
    status, answer = await post(gw, json.dumps(body), JSON)
    assert (status, answer["field"]) == (400, "body")
    [(_, event, _)] = await stored(gw)
    assert event["body"] == ""


async def test_without_a_message_id_the_content_is_the_key(start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    base = f"from=%2B61429912603&to=%2B61477485926&timestamp={SAMPLE_TIMESTAMP}&body="
    answers = [await post(gw, base + text, FORM) for text in ("yes", "yes", "no")]
    assert [a["result"] for _, a in answers] == ["accepted", "duplicate", "accepted"]
    keys = [msg_id for _, _, msg_id in await stored(gw)]
    assert len(keys) == 2 and all(key.startswith("clicksend:sha256-") for key in keys)


async def test_a_reply_is_linked_to_our_outbound_message(start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    ours, indexed = new_id(), new_id()
    # Linked by ClickSend's echo of our custom_string...
    body = {"from": "+61429912603", "to": "+61477485926", "body": "ok", "message_id": "R-1",
            "original_message_id": "OUT-1", "custom_string": ours}
    assert (await post(gw, json.dumps(body), JSON))[0] == 200
    # ...or by the provider id recorded when our outbound message was accepted.
    await gw.runtime.publish_status(StatusEvent(
        id=indexed, direction="outbound", state=State.ACCEPTED, channel="clicksend",
        provider_message_id="OUT-2"))

    async def indexed_yet() -> bool:
        return await gw.runtime.status.find_by_provider_id("clicksend", "OUT-2") == indexed

    await wait_until(indexed_yet, message="the provider id index")
    body.update(message_id="R-2", original_message_id="OUT-2", custom_string="")
    assert (await post(gw, json.dumps(body), JSON))[0] == 200
    replies = [event for subject, event, _ in await stored(gw, "sms.inbound.")]
    assert [(e["reply_to_provider_id"], e["reply_to_id"]) for e in replies] == [
        ("OUT-1", ours), ("OUT-2", indexed)]


@given(st.lists(st.sampled_from(
    ["&", "=", "+", "%", "2", "B", "e", "F", "c3", "a9", "%E2%82%AC", "%ff", "é", " ", "a",
     "token"]),
    max_size=30).map("".join), st.sampled_from(["utf-8", "latin-1", "windows-1252", "ascii"]))
def test_form_fields_reads_a_form_as_parse_qsl_does(text: str, charset: str) -> None:
    try:
        expected: object = first_values(parse_qsl(text, keep_blank_values=True,
                                                  encoding=charset, errors="strict"))
    except ValueError as error:
        expected = type(error)
    try:
        got: object = form_fields(text, charset)
    except ValueError as error:
        got = type(error)
    assert got == expected
    assert form_fields(INBOUND_FORM) == first_values(parse_qsl(INBOUND_FORM,
                                                               keep_blank_values=True))


def first_values(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The first value of each name, without `token`: what the webhook reads."""
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    fields.pop("token", None)
    return fields


@pytest.mark.parametrize("charset", ["latin-1", "ISO-8859-1", "windows-1252"])
async def test_a_form_is_read_in_its_declared_charset(start_gateway: StartGateway,
                                                      charset: str) -> None:
    gw = await start_gateway()
    form = {"Content-Type": f"application/x-www-form-urlencoded; charset={charset}"}
    escaped = "from=%2B61429912603&to=%2B61477485926&body=caf%E9+%E0+10h&message_id=L1-A"
    raw = "from=%2B61429912603&to=%2B61477485926&body=caf\xe9&message_id=L1-B".encode(
        "latin-1")
    for body in (escaped, raw):
        status, answer = await post(gw, body, form)
        assert (status, answer["result"]) == (200, "accepted"), answer
    bodies = sorted(event["body"] for _, event, _ in await stored(gw, "sms.inbound."))
    assert bodies == ["café", "café à 10h"]


def test_a_text_without_an_id_is_keyed_by_the_day_it_came() -> None:
    # Repeated after the dedupe window (a day later), the same text from the same
    # customer is another message: a key of its own, so it is delivered too.
    fields: dict[str, object] = {"from": "+61429912603", "to": "+61477485926",
                                 "body": "Open today?"}
    first = parse_inbound(fields, "AU")
    again = parse_inbound(fields, "AU")
    assert first.dedupe_key == again.dedupe_key  # a retry the same day is the same text
    later = again.message.model_copy(update={
        "received_at": again.message.received_at + timedelta(days=1)})
    assert content_key(later) != first.dedupe_key


async def test_a_webhook_older_than_the_retention_is_refused(
        start_gateway: StartGateway) -> None:
    # Once the stream and the delivery ledger forgot it, it would be delivered again.
    gw = await start_gateway(toml='[bus]\nmax_age = "14d"\n')
    now = datetime.now(UTC)
    stale = json.loads(INBOUND_JSON) | {
        "timestamp": int((now - timedelta(days=15)).timestamp()), "message_id": "OLD-1"}
    status, answer = await post(gw, json.dumps(stale), JSON)
    assert (status, answer["field"]) == (422, "timestamp"), answer
    assert await stored(gw, "sms.inbound.") == []
    recent = stale | {"timestamp": int((now - timedelta(days=13)).timestamp()),
                      "message_id": "OLD-2"}
    status, answer = await post(gw, json.dumps(recent), JSON)
    assert (status, answer["result"]) == (200, "accepted")


@pytest.mark.parametrize("message_id", [inbound_id("clicksend:X"), new_id(), 'odd "id"\n'])
@pytest.mark.parametrize("duplicate", [False, True])
def test_the_stored_answer_is_what_json_response_writes(duplicate: bool,
                                                        message_id: str) -> None:
    answer = stored_answer(duplicate, message_id)
    expected = web.json_response({"result": "duplicate" if duplicate else "accepted",
                                  "id": message_id})
    assert (answer.status, answer.body, dict(answer.headers)) == (
        expected.status, expected.body, dict(expected.headers))
    assert isinstance(answer.body, bytes)
    assert json.loads(answer.body) == {"result": "duplicate" if duplicate else "accepted",
                                       "id": message_id}
