"""Subject filters of durable consumers: which subjects a filter covers, and the one
filter list that covers two (an old filter and its replacement, during an upgrade)."""

from __future__ import annotations

from collections.abc import Sequence

Subjects = str | tuple[str, ...]


def filters_of(subjects: Subjects) -> tuple[str, ...]:
    """`subjects` as a tuple of filters (a spec may name one subject or several)."""
    return (subjects,) if isinstance(subjects, str) else tuple(subjects)


def covers(wide: str, narrow: str) -> bool:
    """Whether every subject that `narrow` matches is matched by `wide` (NATS wildcards:
    `*` one token, `>` one or more at the end)."""
    wide_parts, narrow_parts = wide.split("."), narrow.split(".")
    for index, part in enumerate(wide_parts):
        if part == ">":
            return len(narrow_parts) > index
        if index >= len(narrow_parts) or narrow_parts[index] == ">":
            return False
        if part not in ("*", narrow_parts[index]):
            return False
    return len(narrow_parts) == len(wide_parts)


def union(*filters: Sequence[str]) -> tuple[str, ...]:
    """The filters of all of `filters`, without one another covers (nats-server refuses
    a consumer whose filters overlap)."""
    result: list[str] = []
    for subject in (s for group in filters for s in group):
        if any(covers(kept, subject) for kept in result):
            continue
        result = [kept for kept in result if not covers(subject, kept)] + [subject]
    return tuple(result)
