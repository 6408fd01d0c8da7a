"""SMS segments: how many parts a text takes, in GSM-7 or, failing that, UCS-2.

A text that fits the GSM 03.38 alphabet (basic table, plus the extension table whose
characters take two septets) is sent as GSM-7: 160 septets in one part, 153 per part when
concatenated. Anything else makes the whole text UCS-2: 70 UTF-16 units in one part, 67
per part. Parts are packed greedily and a two-unit character is never split across two
parts, as handsets reassemble them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = frozenset("^{}\\[~]|€\f")

_LIMITS = {"GSM-7": (160, 153), "UCS-2": (70, 67)}

Encoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True)
class SegmentCount:
    """How a text goes out: its encoding, its length in that encoding's units, its parts."""

    encoding: Encoding
    units: int
    segments: int

    def max_units(self, segments: int) -> int:
        """The most units `segments` parts can hold in this encoding."""
        single, multi = _LIMITS[self.encoding]
        return single if segments == 1 else multi * segments


GSM_ALL = GSM_BASIC | GSM_EXTENSION


def count_segments(text: str) -> SegmentCount:
    """The encoding, length and number of parts of `text` (0 parts for an empty text)."""
    # Sizes come from the distinct characters (set operations in C); the per-character
    # loop only runs for texts that need more than one part.
    chars = set(text)
    encoding: Encoding
    if GSM_ALL.issuperset(chars):
        encoding, double = "GSM-7", chars & GSM_EXTENSION
    else:
        encoding, double = "UCS-2", {c for c in chars if ord(c) > 0xFFFF}
    units = len(text) + (sum(text.count(c) for c in double) if double else 0)
    single, multi = _LIMITS[encoding]
    if units == 0:
        return SegmentCount(encoding, 0, 0)
    if units <= single:
        return SegmentCount(encoding, units, 1)
    segments, used = 1, 0
    for char in text:
        cost = 2 if char in double else 1
        if used + cost > multi:
            segments, used = segments + 1, 0
        used += cost
    return SegmentCount(encoding, units, segments)
