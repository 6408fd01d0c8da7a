"""Phone numbers and senders: our numbers and recipients are E.164, normalised once at the
edge; a customer's sender may also be a short code or a name, kept as sent."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import (
    COUNTRY_CODE_TO_REGION_CODE,
    NumberParseException,
    PhoneMetadata,
    PhoneNumber,
    PhoneNumberType,
)

from pbxsms.core.model.events import SenderType

# What each parse failure means, in our words (phonenumbers' own text is not shown).
_PARSE_ERRORS = {
    NumberParseException.INVALID_COUNTRY_CODE: "no known country code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}
_SMS_TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)


class InvalidNumber(ValueError):
    """Not a phone number we can use; the message says why."""


# Carriers deliver from short codes of 3 to 8 digits (US 5-6, UK 5, AU up to 8).
_SHORT_CODE = re.compile(r"[0-9]{3,8}")
# An alphanumeric sender id (GSM allows 11 characters; some carriers pass a few more).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 .&'_-]{0,15}")
_LETTER = re.compile(r"[A-Za-z]")


@dataclass(frozen=True)
class Sender:
    """Who sent an inbound text: `address` as E.164, or the short code or name as sent."""

    address: str
    type: SenderType


def to_e164(raw: object, region: str = "US") -> str:
    """`raw` (str or int, any common format) as E.164; `region` applies without `+`.

    For customers' numbers: plausibility is judged by length per country
    (`is_possible_number`) rather than by number-range metadata, which lags real
    allocations and would refuse real customers (our own numbers: `our_number`).
    Letters are refused, never read as a keypad's digits: `202FLOWERS` is a sender name,
    and the number it spells belongs to a stranger.
    """
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise InvalidNumber("expected a phone number")
    return _to_e164(str(raw), region.upper())


def classify_sender(raw: str, region: str = "US") -> Sender:
    """The sender of an inbound text: a phone number (E.164), else a short code or a name
    kept exactly as sent; InvalidNumber when it is none of these."""
    return _classified(raw.strip(), region)


# Pure and immutable, and asked again for every text of a regular customer (a Sender
# built each time was most of its cost). Refusals are not cached, as in `_to_e164`.
@functools.lru_cache(maxsize=8192)
def _classified(text: str, region: str) -> Sender:
    if _LETTER.search(text):
        if not _NAME.fullmatch(text):
            raise InvalidNumber("not a phone number, short code or sender name")
        return Sender(text, "alphanumeric")
    try:
        return Sender(to_e164(text, region), "e164")
    except InvalidNumber:
        if _SHORT_CODE.fullmatch(text):
            return Sender(text, "short_code")
        raise
def our_number(raw: object, region: str = "US") -> str:
    """One of the operator's own numbers as E.164: it must be *valid*, not only possible.

    A national number read the wrong way (the default region) would otherwise be stored
    and make every text to it unroutable; the error says how it was read and what to write.
    """
    e164 = to_e164(raw, region)
    number = phonenumbers.parse(e164)
    if phonenumbers.is_valid_number(number):
        return e164
    text = str(raw).strip()
    if _international(text):
        country = phonenumbers.region_code_for_country_code(number.country_code or 0)
        raise InvalidNumber(f"{text!r} is not a valid number in its country "
                            f"(+{number.country_code}, {country}): check the digits")
    region = region.upper()
    read = f"{text!r} read as {e164} (PBXSMS_DEFAULT_REGION={region}) is not valid"
    found = _valid_elsewhere(text)
    if not found:
        raise InvalidNumber(f"{read}: write it in international form, + and country code")
    (best, where), others = found[0], found[1:]
    also = "".join(f" (or {e164} for {country})" for e164, country in others)
    raise InvalidNumber(f"{read}: write {best} or set PBXSMS_DEFAULT_REGION={where}{also}")


def _international(text: str) -> bool:
    return text.startswith(("+", "00"))


@functools.lru_cache(maxsize=256)
def _valid_elsewhere(text: str) -> list[tuple[str, str]]:
    """(E.164, region) for the regions where `text` is a valid number, mobile ones first
    (SMS numbers mostly are); a few at most, each country once."""
    mobile: dict[str, str] = {}
    other: dict[str, str] = {}
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        try:
            number = phonenumbers.parse(text, region)
        except NumberParseException:
            continue
        # Only the country's main region, so +61 is suggested as AU, not also CX and CC.
        if (phonenumbers.region_code_for_number(number) != region
                or not phonenumbers.is_valid_number(number)):
            continue
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        kind = mobile if phonenumbers.number_type(number) in _SMS_TYPES else other
        kind.setdefault(e164, region)
    return list((mobile or other).items())[:3]


# `+` and digits: how carriers write numbers, and E.164's own form.
_E164 = re.compile(r"\+[1-9][0-9]{2,16}")


def _read_as_written(text: str) -> bool:
    """Whether `_to_e164(text)` is `text` itself, for `text` matching `_E164`; False
    when unsure (`_to_e164` decides then).

    What phonenumbers does with `+` and digits (region ignored): the country code is the
    first 1-3 digits it knows; the rest is the national number, from which it strips a
    national prefix only where `national_prefix_for_parsing` matches at its start;
    leading zeros are kept as such. Without a prefix match or a leading zero, the number
    it builds is (country code, int(rest)), and E.164 writes that back as `text`; then
    only `is_possible_number` remains to ask, of the same number. A fifth of the cost of
    parsing, for every customer, not only those in the cache (tests/model compares the
    two ways over every country code).
    """
    for size in (1, 2, 3):
        code = int(text[1:1 + size])
        if code in COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return False
    national = text[1 + size:]
    if len(national) < 2 or national[0] == "0":
        return False
    known, prefix = _national_prefix(code)
    if not known or (prefix is not None and prefix.match(national)):
        return False
    return bool(phonenumbers.is_possible_number(
        PhoneNumber(country_code=code, national_number=int(national))))


@functools.cache  # one entry per country code
def _national_prefix(code: int) -> tuple[bool, re.Pattern[str] | None]:
    """Whether phonenumbers has metadata for country code `code`, and the national
    prefix it strips when parsing that country's numbers."""
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(
        code, phonenumbers.region_code_for_country_code(code))
    if metadata is None:
        return False, None
    prefix = metadata.national_prefix_for_parsing
    return True, re.compile(prefix) if prefix else None


# Pure, and the same few numbers (ours, regular customers) arrive again and again: parsing
# was a tenth of a webhook's CPU. Refusals are not cached (lru_cache keeps no exceptions).
@functools.lru_cache(maxsize=8192)
def _to_e164(raw: str, region: str) -> str:
    text = raw.strip()
    if not text:
        raise InvalidNumber("empty phone number")
    if len(text) > 32:
        raise InvalidNumber("phone number too long")
    if _E164.fullmatch(text) and _read_as_written(text):
        return text
    if _LETTER.search(_digits_part(text)):
        raise InvalidNumber("a sender name (it has letters), not a phone number: it cannot "
                            "receive texts")
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else region)
    except NumberParseException as error:
        reason = _PARSE_ERRORS.get(error.error_type, "not a phone number")
        if error.error_type == NumberParseException.INVALID_COUNTRY_CODE:
            reason += (": write it with + and the country code" if text.startswith("+")
                       else f" for region {region}: write it with + and the country code")
        raise InvalidNumber(reason if reason.startswith("not a phone number")
                            else f"not a phone number: {reason}") from None
    if not phonenumbers.is_possible_number(number):
        if _SHORT_CODE.fullmatch(text):
            raise InvalidNumber("a short code, not a phone number: replies to short codes "
                                "cannot be sent")
        raise InvalidNumber("not a possible phone number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _digits_part(text: str) -> str:
    """What must hold no letter: the number without an RFC 3966 `tel:` and parameters."""
    if text[:4].lower() == "tel:":
        text = text[4:]
    return text.partition(";")[0]
