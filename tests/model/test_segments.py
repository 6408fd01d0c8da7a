"""Segment counting: GSM-7 with its extension table, UCS-2 otherwise, no split characters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbxsms.core.model.segments import GSM_BASIC, GSM_EXTENSION, count_segments
from pbxsms.sim.clicksend import message_parts


@pytest.mark.parametrize(("text", "encoding", "units", "segments"), [
    ("", "GSM-7", 0, 0),
    ("a" * 160, "GSM-7", 160, 1),
    ("a" * 161, "GSM-7", 161, 2),
    ("a" * 306, "GSM-7", 306, 2),
    ("a" * 307, "GSM-7", 307, 3),
    ("é" * 160, "GSM-7", 160, 1),  # in the basic table
    ("€" * 80, "GSM-7", 160, 1),  # extension table: two septets each
    ("€" * 81, "GSM-7", 162, 2),
    ("a" * 152 + "€" + "a" * 152, "GSM-7", 306, 3),  # the € cannot straddle two parts
    ("ж" * 70, "UCS-2", 70, 1),
    ("ж" * 71, "UCS-2", 71, 2),
    ("ж" * 134, "UCS-2", 134, 2),
    ("a" * 159 + "ж", "UCS-2", 160, 3),  # one Cyrillic letter makes it all UCS-2
    ("😀" * 35, "UCS-2", 70, 1),  # two UTF-16 units each
    ("a" * 66 + "😀" + "a" * 66, "UCS-2", 134, 3),  # nor can a surrogate pair
])
def test_known_counts(text: str, encoding: str, units: int, segments: int) -> None:
    count = count_segments(text)
    assert (count.encoding, count.units, count.segments) == (encoding, units, segments)


BASIC = sorted(GSM_BASIC - {"\n", "\r"})


@given(st.text(alphabet=BASIC, max_size=700) | st.text(max_size=300).filter(
    lambda t: not any(c in "\n\r" or ord(c) > 0xFFFF for c in t)))
def test_agrees_with_the_clicksend_simulator_without_line_breaks(text: str) -> None:
    # ClickSend counts a line break as two characters; without them, and without
    # characters that could straddle two parts, the rules are the same.
    if text and not any(c in GSM_EXTENSION for c in text):
        assert count_segments(text).segments == message_parts(text)


@given(st.text(alphabet=sorted(GSM_BASIC | GSM_EXTENSION), max_size=700))
def test_extension_characters_only_ever_add_parts(text: str) -> None:
    # Never splitting a two-septet character can only need more parts than plain division.
    count = count_segments(text)
    if text:
        assert count.segments >= -(-count.units // (160 if count.units <= 160 else 153))


@given(st.text(max_size=600))
def test_every_text_fits_its_parts(text: str) -> None:
    count = count_segments(text)
    if count.units:
        assert count.units <= count.max_units(count.segments)
        assert count.segments == 1 or count.units > count.max_units(1)
