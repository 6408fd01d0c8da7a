"""The message-settings record: numbers in any format become E.164, fields are checked."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbxsms.core.model.numbers import NumberError, NumberSettings, parse_rows

BASE = {"number": "+61411111111", "provider": "clicksend"}


def errors_of(data: dict[str, object], region: str = "US") -> NumberError:
    with pytest.raises(NumberError) as caught:
        parse_rows([data], region, ["clicksend"])
    return caught.value


@given(region=st.sampled_from(["US", "GB", "AU", "DE", "FR", "IN", "BR", "ZA"]),
       style=st.sampled_from([phonenumbers.PhoneNumberFormat.NATIONAL,
                              phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                              phonenumbers.PhoneNumberFormat.E164,
                              phonenumbers.PhoneNumberFormat.RFC3966]))
def test_any_common_format_is_stored_as_e164(region: str, style: int) -> None:
    example = phonenumbers.example_number_for_type(
        region, phonenumbers.PhoneNumberType.MOBILE)
    assert example is not None
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    written = phonenumbers.format_number(example, style)
    record = NumberSettings.parse({**BASE, "number": written}, region)
    assert record.number == e164


def test_fields_are_normalised() -> None:
    record = NumberSettings.parse({
        "number": "0061 411 111 111", "provider": "clicksend",
        "extension": 101, "domain": " PBX.Example.com ",
        "email": "Desk@Example.COM; sales@example.com,desk@example.com",
        "mobileapp_org": " ", "description": " Front desk "})
    assert record.number == "+61411111111"
    assert record.extension == "101"
    assert record.domain == "pbx.example.com"
    assert record.email == ["Desk@example.com", "sales@example.com", "desk@example.com"]
    assert record.mobileapp_org is None
    assert record.description == "Front desk"
    assert record.enabled is True
    assert NumberSettings.parse({**BASE, "email": ["a@b.example"]}).email == ["a@b.example"]


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"number": "12"}, "number", "possible"),
    ({"number": "call me"}, "number", "phone number"),
    ({"email": "not-an-email"}, "email", "not an email address"),
    ({"email": ["ok@example.com", "bad@"]}, "email", "'bad@'"),
    ({"email": "a@localhost"}, "email", "domain"),
    ({"extension": "10 1"}, "extension", "extension"),
    ({"domain": "not a domain"}, "domain", "domain"),
    ({"provider": "smsco"}, "provider", "not an enabled provider plugin"),
    ({"enabled": "perhaps"}, "enabled", "boolean"),
    ({"extention": "101"}, "extention", "unknown field"),
])
def test_invalid_values_name_their_field(change: dict[str, object], field: str,
                                         words: str) -> None:
    error = errors_of({**BASE, **change})
    assert error.field == f"numbers[0].{field}"
    assert words in error.message


def test_missing_provider_and_duplicates_are_named() -> None:
    error = errors_of({"number": "+61411111111"})
    assert (error.field, error.message) == ("numbers[0].provider", "required")
    with pytest.raises(NumberError) as caught:
        parse_rows([BASE, {**BASE, "number": "0411 111 111"}], "AU", ["clicksend"])
    assert caught.value.field == "numbers[1].number"
    assert "also numbers[0]" in caught.value.message
