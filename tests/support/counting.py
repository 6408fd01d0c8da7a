"""Counting the requests a store makes to the bus, to prove one was saved."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def calls_of(owner: object, method: str) -> Iterator[list[Any]]:
    """The first argument of each call of the async method `owner.method` made inside
    the block (the calls still go through); the method is put back on leaving."""
    calls: list[Any] = []
    original = getattr(owner, method)

    async def counted(first: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(first)
        return await original(first, *args, **kwargs)

    setattr(owner, method, counted)
    try:
        yield calls
    finally:
        setattr(owner, method, original)
