"""Our `X-Twilio-Signature` code, the simulator's and Twilio's own SDK (the oracle: its
RequestValidator) agree on every request; the inbound parser reads Twilio's shapes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbxsms.core.model.events import State
from pbxsms.core.refusal import Refusal
from pbxsms.plugins.twilio import signature
from pbxsms.plugins.twilio.inbound import fields_of, parse_inbound, parse_receipt
from pbxsms.sim import twilio as sim

validator = pytest.importorskip("twilio.request_validator")

TOKEN = "12345678901234567890123456789012"
URL = "https://sms.example.com/webhook/twilio/status?id=0f0e3a4c-9a53-4d38-9d9a-1b0f1f8e3c11"

names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)
values = st.text(st.characters(codec="utf-8"), max_size=30)


@given(st.lists(st.tuples(names, values), max_size=12))
def test_our_signature_and_the_simulators_are_twilios(params: list[tuple[str, str]]) -> None:
    oracle = validator.RequestValidator(TOKEN)
    multi = _MultiDict(params)
    expected = oracle.compute_signature(URL, multi)
    assert signature.compute(TOKEN, URL, params) == expected
    assert sim.sign(TOKEN, URL, params) == expected
    assert signature.valid(TOKEN, URL, params, expected)
    assert oracle.validate(URL, multi, signature.compute(TOKEN, URL, params))


def test_the_port_forms_and_a_wrong_signature() -> None:
    oracle = validator.RequestValidator(TOKEN)
    params = [("Body", "hi"), ("From", "+14155550199")]
    with_port = "https://sms.example.com:443/webhook/twilio/sms"
    signed = oracle.compute_signature(with_port, dict(params))
    assert signature.valid(TOKEN, "https://sms.example.com/webhook/twilio/sms", params, signed)
    assert signature.url_forms("http://h:8080/x") == ["http://h:8080/x"]
    assert not signature.valid(TOKEN, "https://sms.example.com/webhook/twilio/sms",
                               [("Body", "hi!"), ("From", "+14155550199")], signed)
    assert not signature.valid("other", with_port, params, signed)
    assert not signature.valid(TOKEN, with_port, params, None)


def test_a_json_body_is_covered_by_its_hash_in_the_url() -> None:
    oracle = validator.RequestValidator(TOKEN)
    body = '{"MessageSid":"SM00000000000000000000000000000001"}'
    url = ("https://sms.example.com/webhook/twilio/status?bodySHA256="
           + hashlib.sha256(body.encode()).hexdigest())
    given_signature = oracle.compute_signature(url, {})
    assert oracle.validate(url, body, given_signature)
    assert signature.body_hash_matches(url, body.encode())
    assert signature.valid(TOKEN, url, [], given_signature)
    assert not signature.body_hash_matches(url, body.encode() + b" ")
    assert not signature.body_hash_matches("https://sms.example.com/x", body.encode())


def test_inbound_and_status_parameters_become_events() -> None:
    sid = "SM" + "0123456789abcdef" * 2
    form = [("ToCountry", "US"), ("SmsSid", sid), ("Body", "Hi 👋"), ("To", "+14155550100"),
            ("MessageSid", sid), ("AccountSid", "AC" + "1" * 32), ("From", "(415) 555-0199"),
            ("NumSegments", "1"), ("SomethingNew", "Twilio adds fields")]
    parsed = parse_inbound(fields_of(form), "US")
    assert parsed.dedupe_key == f"twilio:{sid}"
    message = parsed.message
    assert (message.from_, message.to, message.body) == ("+14155550199", "+14155550100",
                                                         "Hi 👋")
    assert message.extra["AccountSid"] == "AC" + "1" * 32

    status = parse_receipt(fields_of({"MessageSid": sid, "MessageStatus": "undelivered",
                                      "ErrorCode": "30007"}), None)
    assert status.receipt.state == State.FAILED and status.receipt.error_code == "30007"
    assert "carrier filtering" in (status.receipt.reason or "")
    assert parse_receipt(fields_of({"MessageSid": sid, "MessageStatus": "delivered",
                                    "ErrorCode": "0"}), None).receipt.error_code is None
    for broken in ({"MessageSid": "SM1", "MessageStatus": "sent"},
                   {"MessageSid": sid, "MessageStatus": "exploded"}, {"MessageSid": sid}):
        with pytest.raises(Refusal):
            parse_receipt(fields_of(broken), None)


class _MultiDict:
    """What the SDK reads repeated form fields from (`getall`)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    def __iter__(self) -> Iterator[str]:
        return iter([name for name, _ in self.pairs])

    def getall(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]
