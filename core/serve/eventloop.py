"""The event loop `pbxsms serve` runs on: uvloop where it is installed, else asyncio's.

uvloop (libuv) does the loop's own work, transports and callbacks, in C: every message
costs a dozen NATS round trips, HTTP calls and SMTP commands, so that work is much of a
message's CPU. It is a dependency on Linux and macOS; elsewhere asyncio's loop serves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop, or None (asyncio's default) when uvloop is not installed."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def name() -> str:
    """Which loop `run` uses, for the startup log."""
    return "uvloop" if loop_factory() is not None else "asyncio"


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the loop above."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
