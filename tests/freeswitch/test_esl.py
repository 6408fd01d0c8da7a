"""The ESL client against the strict fake FreeSWITCH: framing, auth, events, reconnects."""

from __future__ import annotations

import asyncio

import pytest

from pbxsms.plugins.freeswitch.esl import (
    AclRefused,
    AuthRefused,
    EslClient,
    EslClosed,
    Event,
    encode_command,
    open_connection,
    parse_event,
    subscription,
)
from pbxsms.sim.freeswitch import FakeFreeSwitch, fs_url_encode
from tests.helpers import wait_until
from tests.support.freeswitch import ESL_PASSWORD

EVENTS = ["MESSAGE", "SMS::DELIVERY_REPORT", "sofia::error"]
TRICKY = "Line one\nline two | pipe\r\n😀 café %41 + & = ?\n\nend"


def test_a_command_is_its_line_headers_length_and_body_byte_for_byte() -> None:
    body = TRICKY.encode()
    data = encode_command("sendevent CUSTOM", [("Event-Subclass", "SMS::SEND_MESSAGE"),
                                               ("to", "201@pbx.example.com")], body)
    assert data == (b"sendevent CUSTOM\nEvent-Subclass: SMS::SEND_MESSAGE\n"
                    b"to: 201@pbx.example.com\nContent-Length: %d\n\n" % len(body)) + body
    assert encode_command("api sofia_contact internal/201@pbx") == \
        b"api sofia_contact internal/201@pbx\n\n"


@pytest.mark.parametrize("bad", [
    ("sendevent CUSTOM\nx", [], None),
    ("sendevent CUSTOM", [("to", "201\r\nEvent-Name: X")], None),
    ("sendevent CUSTOM", [("bad:name", "x")], None),
    ("sendevent CUSTOM", [("Content-Length", "3")], None),
    ("sendevent CUSTOM", [], b"nul\0byte"),
])
def test_what_cannot_travel_is_refused_not_mangled(
        bad: tuple[str, list[tuple[str, str]], bytes | None]) -> None:
    with pytest.raises(ValueError):
        encode_command(*bad)


def test_subscription_lists_plain_events_before_custom_subclasses() -> None:
    assert subscription(EVENTS) == \
        "event plain MESSAGE CUSTOM SMS::DELIVERY_REPORT sofia::error"


def test_event_headers_are_url_decoded_and_the_body_taken_by_length() -> None:
    value = "sip:+61422222222@pbx.example.com;tag=a b|c%"
    body = TRICKY.encode()
    inner = (f"Event-Name: CUSTOM\nfrom_full: {fs_url_encode(value)}\n"
             f"Content-Length: {len(body)}\n\n").encode() + body
    event = parse_event(inner)
    assert event.get("FROM_FULL") == value and event.body == TRICKY
    assert "%" in fs_url_encode(value) and "|" not in fs_url_encode(value)


async def test_wrong_password_is_refused_and_told_apart(fake: FakeFreeSwitch) -> None:
    with pytest.raises(AuthRefused, match="refused the password"):
        await open_connection("127.0.0.1", fake.port, "wrong", EVENTS, lambda e: None)
    assert fake.auth_failures == 1
    assert fake.received[0].raw == b"auth wrong\n\n"


async def test_an_acl_refusal_is_told_apart(fake: FakeFreeSwitch) -> None:
    fake.refuse_address = True
    with pytest.raises(AclRefused):
        await open_connection("127.0.0.1", fake.port, ESL_PASSWORD, EVENTS, lambda e: None)


async def test_nothing_listening_is_a_closed_connection() -> None:
    async with FakeFreeSwitch(ESL_PASSWORD) as server:
        port = server.port
    with pytest.raises(EslClosed, match="cannot connect"):
        await open_connection("127.0.0.1", port, ESL_PASSWORD, EVENTS, lambda e: None)


async def test_api_sendevent_and_the_report_event_round_trip(fake: FakeFreeSwitch) -> None:
    events: list[Event] = []
    client = EslClient("127.0.0.1", fake.port, ESL_PASSWORD, EVENTS, events.append)
    client.start()
    try:
        assert await client.wait_connected(5)
        assert [r.raw for r in fake.received[:2]] == [
            f"auth {ESL_PASSWORD}\n\n".encode(),
            b"event plain MESSAGE CUSTOM SMS::DELIVERY_REPORT sofia::error\n\n"]
        assert await client.api("sofia_contact internal/201@pbx.example.com") == \
            "error/user_not_registered"
        fake.register("201", "pbx.example.com")
        answers = await asyncio.gather(*(
            client.api("sofia_contact internal/201@pbx.example.com") for _ in range(5)),
            client.api("module_exists mod_sms"))
        assert answers[-1] == "true" and set(answers[:5]) == {fake.registered[
            "201@pbx.example.com"]}

        headers = [("Event-Subclass", "SMS::SEND_MESSAGE"), ("proto", "sip"),
                   ("dest_proto", "sip"), ("from", "+61422222222"),
                   ("from_user", "+61422222222"), ("from_host", "pbx.example.com"),
                   ("from_full", "sip:+61422222222@pbx.example.com"),
                   ("to", "201@pbx.example.com"), ("to_user", "201"),
                   ("to_host", "pbx.example.com"), ("sip_profile", "internal"),
                   ("type", "text/plain"), ("blocking", "true"), ("x-pbxsms-id", "m-1")]
        event_uuid = await client.sendevent("CUSTOM", headers, TRICKY)
        assert len(event_uuid) == 36
        (sent,) = fake.sent_events()
        assert sent.body == TRICKY.encode() and sent.header("x-pbxsms-id") == "m-1"
        await wait_until(lambda: any(e.subclass == "SMS::DELIVERY_REPORT" for e in events),
                         5, "the delivery report")
        (report,) = [e for e in events if e.subclass == "SMS::DELIVERY_REPORT"]
        assert report.get("Status") == "Success" and report.get("Delivery-Result-Code") == "200"
        assert report.get("x-pbxsms-id") == "m-1" and report.body == TRICKY
        assert report.get("from_full") == "sip:+61422222222@pbx.example.com"
        assert fake.delivered[0].body == TRICKY
    finally:
        await client.close()


async def test_a_dropped_connection_is_reopened_and_resubscribed(
        fake: FakeFreeSwitch) -> None:
    events: list[Event] = []
    client = EslClient("127.0.0.1", fake.port, ESL_PASSWORD, EVENTS, events.append,
                       backoff_initial=0.05)
    client.start()
    try:
        assert await client.wait_connected(5)
        await fake.drop_connections()
        await wait_until(lambda: client.connects == 2 and fake.listeners == 1, 5,
                         "the reconnect")
        assert await client.api("module_exists mod_sms") == "true"
        await fake.phone_message("201", "pbx.example.com", "+61422222222", "hi there")
        await wait_until(lambda: any(e.name == "MESSAGE" for e in events), 5, "the event")
    finally:
        await client.close()


async def test_a_command_on_a_lost_connection_fails_at_once(fake: FakeFreeSwitch) -> None:
    client = EslClient("127.0.0.1", fake.port, "wrong", EVENTS, lambda e: None,
                       backoff_initial=0.05)
    client.start()
    try:
        await wait_until(lambda: fake.auth_failures >= 1, 5, "the refused login")
        assert not client.connected
        assert client.last_error is not None and "FREESWITCH_ESL_PASSWORD" in client.last_error
        assert ESL_PASSWORD not in client.last_error and "wrong" not in client.last_error
        with pytest.raises(EslClosed):
            await client.api("status")
    finally:
        await client.close()
