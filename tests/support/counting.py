"""Counting the requests a store makes to the bus, to prove one was saved."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import nats
from nats.aio.msg import Msg

from tests.helpers import wait_until


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


class Requests:
    """`async with Requests(url) as seen:` every message the NATS server at `url` takes
    meanwhile (requests, writes, replies), as (subject, payload), in the order it took
    them; `await seen.until_now()` is what it took before the call."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.taken: list[tuple[str, bytes]] = []
        self._marks = 0

    async def __aenter__(self) -> Requests:
        self._nc = await nats.connect(self.url)

        async def take(msg: Msg) -> None:
            self.taken.append((msg.subject, msg.data))

        # One subscription: its messages come in the order the server took them.
        await self._nc.subscribe(">", cb=take)
        await self._nc.flush()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._nc.close()

    async def until_now(self) -> list[tuple[str, bytes]]:
        """What was taken before this call: a mark published now comes after all of it."""
        self._marks += 1
        mark = f"_spy.mark.{self._marks}"
        await self._nc.publish(mark)
        await wait_until(lambda: any(subject == mark for subject, _ in self.taken),
                         message="the spy's mark")
        until = next(n for n, (subject, _) in enumerate(self.taken) if subject == mark)
        return [(subject, data) for subject, data in self.taken[:until]
                if not subject.startswith("_spy.mark.")]
