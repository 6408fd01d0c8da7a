"""Phone numbers: everything inside pbxsms is E.164, normalised once at the edge."""

from __future__ import annotations

import functools

import phonenumbers


class InvalidNumber(ValueError):
    """Not a phone number we can use; the message says why."""


def to_e164(raw: object, region: str = "US") -> str:
    """`raw` (str or int, any common format) as E.164; `region` applies without `+`.

    Plausibility is judged by length per country (`is_possible_number`) rather than by
    number-range metadata, which lags real allocations and would refuse real customers.
    """
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise InvalidNumber("expected a phone number")
    return _to_e164(str(raw), region.upper())


# Pure, and the same few numbers (ours, regular customers) arrive again and again: parsing
# was a tenth of a webhook's CPU. Refusals are not cached (lru_cache keeps no exceptions).
@functools.lru_cache(maxsize=8192)
def _to_e164(raw: str, region: str) -> str:
    text = raw.strip()
    if not text:
        raise InvalidNumber("empty phone number")
    if len(text) > 32:
        raise InvalidNumber("phone number too long")
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException as error:
        raise InvalidNumber(f"not a phone number: {error}") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidNumber("not a possible phone number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
