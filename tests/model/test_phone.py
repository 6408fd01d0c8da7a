"""Phone numbers: the shortcut for numbers already in E.164 reads them as phonenumbers does."""

from __future__ import annotations

import random

import pytest
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

from pbxsms.core.model import phone
from pbxsms.core.model.phone import InvalidNumber, to_e164


def parsed(text: str) -> str | None:
    """What the full parse makes of `text` (uncached), None when it refuses it."""
    try:
        return phone._to_e164.__wrapped__(text, "US")
    except InvalidNumber:
        return None


def test_the_shortcut_agrees_with_parsing_for_every_country_code() -> None:
    """Wherever `_read_as_written` answers yes, parsing gives the same number back; it
    covers what carriers send (checked on typical mobiles) and says no to the rest."""
    draw = random.Random(19)
    taken = 0
    for code in sorted(COUNTRY_CODE_TO_REGION_CODE):
        for length in range(1, 16):
            for _ in range(12):
                # Leading digits as national prefixes and trunk codes start (0, 1, 8).
                first = draw.choice("0123456789018")
                text = f"+{code}{first}{''.join(draw.choices('0123456789', k=length - 1))}"
                if not phone._E164.fullmatch(text):
                    continue
                if phone._read_as_written(text):
                    taken += 1
                    assert parsed(text) == text, text
    assert taken > 1000
    for text in ("+61411111111", "+61490012345", "+12025550143", "+447700900123",
                 "+4915123456789", "+33612345678", "+8613812345678"):
        assert phone._read_as_written(text) and parsed(text) == text


@pytest.mark.parametrize("text", [
    "+440201234567",  # a national prefix after the country code: parsing strips it
    "+610411111111",
    "+3903123456",  # Italy keeps a leading zero
    "+999123456",  # no such country code
    "+6112",  # too short for Australia
    "+6141111111111111",  # too long
])
def test_what_the_shortcut_leaves_is_read_the_full_way(text: str) -> None:
    assert not phone._read_as_written(text)
    expected = parsed(text)
    if expected is None:
        with pytest.raises(InvalidNumber):
            to_e164(text)
    else:
        assert to_e164(text) == expected
