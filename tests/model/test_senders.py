"""Senders: E.164 numbers, short codes and names told apart; letters never become digits."""

from __future__ import annotations

import pytest

from pbxsms.core.model.phone import InvalidNumber, classify_sender, to_e164


@pytest.mark.parametrize(("raw", "address", "kind"), [
    ("+61 411 111 111", "+61411111111", "e164"),
    ("(202) 555-0143", "+12025550143", "e164"),
    ("72345", "72345", "short_code"),
    ("246810", "246810", "short_code"),
    ("GOOGLE", "GOOGLE", "alphanumeric"),
    ("MyBank", "MyBank", "alphanumeric"),
    ("202FLOWERS", "202FLOWERS", "alphanumeric"),
    ("Bank247Info", "Bank247Info", "alphanumeric"),
])
def test_each_sender_is_kept_as_sent_with_its_type(raw: str, address: str, kind: str) -> None:
    sender = classify_sender(raw, "US")
    assert (sender.address, sender.type) == (address, kind)


@pytest.mark.parametrize("raw", ["", "12", "<script>", "GOOGLE\nINFO", "x" * 40])
def test_what_is_no_sender_is_refused(raw: str) -> None:
    with pytest.raises(InvalidNumber):
        classify_sender(raw, "US")


@pytest.mark.parametrize(("raw", "why"), [
    ("202FLOWERS", "cannot receive texts"),
    ("1-800-FLOWERS", "cannot receive texts"),
    ("GOOGLE", "cannot receive texts"),
    ("72345", "short code"),
])
def test_a_name_or_short_code_is_never_a_recipient(raw: str, why: str) -> None:
    with pytest.raises(InvalidNumber, match=why):
        to_e164(raw, "US")
