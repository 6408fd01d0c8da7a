"""Subscriptions whose messages are handled as nats-py reads them: no queue, no task.

nats-py hands each message of a subscription with a callback to a queue, and a task of
the subscription takes it out and awaits the callback: a queue put and get, a task
wakeup and a coroutine per message. The gateway's busiest subscriptions (the
`Publisher`'s answers, about nine a text, and the consumers' deliveries) only look a
message up and resolve a future or start a task, so they are handed each message at
once, in the read loop, in the order read.

This relies on nats-py's internals (a subscription's `_pending_queue`, its
`_wait_for_msgs_task` and `_pending_size`, which `Client._process_msg` and
`Subscription.drain` use); `tests/bus/test_direct.py` checks they still behave as
relied on, and a subscription that lacks them keeps nats-py's own way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = logging.getLogger("pbxsms.bus")


class _Direct:
    """Stands for a subscription's pending queue: each message put in it is handled."""

    def __init__(self, sub: Subscription, handle: Callable[[Msg], None]) -> None:
        self._sub = sub
        self._handle = handle

    def put_nowait(self, msg: Msg) -> None:
        self._sub._pending_size -= len(msg.data)  # counted by `_process_msg`, not pending
        try:
            self._handle(msg)
        except Exception:  # as nats-py's error callback would: the read loop goes on
            log.exception("handling a message on %s failed", msg.subject)

    def qsize(self) -> int:
        return 0

    def empty(self) -> bool:
        return True

    def task_done(self) -> None:
        pass

    async def join(self) -> None:  # `drain`: nothing is ever left to handle
        return None


async def subscribe_direct(nc: NATS, subject: str,
                           handle: Callable[[Msg], None]) -> Subscription:
    """Subscribe to `subject`, `handle` called with each message as it is read (it must
    not block, and should not raise: what it raises is logged)."""

    async def queued(msg: Msg) -> None:  # what came before the switch, nats-py's way
        handle(msg)

    sub = await nc.subscribe(subject, cb=queued)
    task = getattr(sub, "_wait_for_msgs_task", None)
    pending = getattr(sub, "_pending_queue", None)
    if not isinstance(task, asyncio.Task) or not isinstance(pending, asyncio.Queue) \
            or not hasattr(sub, "_pending_size"):
        return sub  # another nats-py: its own way, unchanged
    direct = _Direct(sub, handle)
    sub._pending_queue = direct  # type: ignore[assignment]
    task.cancel()  # waiting in `get` (the callback never waits): nothing is lost
    while not pending.empty():
        direct.put_nowait(pending.get_nowait())
    return sub
