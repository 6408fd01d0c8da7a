"""Batches of outbound messages per provider: full batches go at once, partial ones soon.

Each delivery of the outbound consumer submits its one message and awaits that message's
result. A batch is sent when it holds the provider's `max_batch` messages, or once no
message has joined it for `flush_delay` seconds and none is on its way (being checked by
another delivery), so a lone reply waits no longer than that while a burst fills whole
batches. A partial batch waits at most ten flush delays after its first message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pbxsms.core.registry import OutboundMessage, Outcome, Provider, SendResult

log = logging.getLogger("pbxsms.outbound")

MAX_WAIT_FACTOR = 10


@dataclass
class _Batch:
    provider: Provider
    started: float
    items: list[tuple[OutboundMessage, asyncio.Future[SendResult]]] = field(
        default_factory=list)
    timer: asyncio.TimerHandle | None = None


class _Incoming:
    """One message counted as on its way until `arrived()` or the end of the block: a
    plain object, where a generator context manager allocated four per message."""

    __slots__ = ("_batcher", "_pending")

    def __init__(self, batcher: Batcher) -> None:
        self._batcher = batcher
        self._pending = False

    def __enter__(self) -> Callable[[], None]:
        self._pending = True
        self._batcher._incoming += 1
        return self.arrived

    def __exit__(self, *_: object) -> None:
        self.arrived()

    def arrived(self) -> None:
        if self._pending:
            self._pending = False
            self._batcher._incoming -= 1


class Batcher:
    """Collects messages per provider and sends them through `provider.send_batch`."""

    def __init__(self) -> None:
        self._open: dict[str, _Batch] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self._incoming = 0

    def incoming(self) -> _Incoming:
        """Count a message on its way to `submit` (`with batcher.incoming() as arrived:`);
        call `arrived()` just before submitting it. Open batches wait for such messages
        (within their deadline)."""
        return _Incoming(self)

    async def submit(self, provider: Provider, message: OutboundMessage) -> SendResult:
        """Add `message` to its provider's next batch and wait for its result."""
        loop = asyncio.get_running_loop()
        batch = self._open.get(provider.name)
        if batch is None:
            batch = self._open[provider.name] = _Batch(provider, time.monotonic())
        future: asyncio.Future[SendResult] = loop.create_future()
        batch.items.append((message, future))
        if len(batch.items) >= max(1, provider.max_batch):
            self._flush(provider.name, "full")
        else:
            self._arm(batch, loop)
        # A cancelled wait cancels the future; a batch not yet sent then leaves it out,
        # so nothing is sent behind the back of a delivery that will be redelivered.
        return await future

    def _arm(self, batch: _Batch, loop: asyncio.AbstractEventLoop) -> None:
        delay = max(batch.provider.flush_delay, 0.0)
        deadline = batch.started + MAX_WAIT_FACTOR * delay
        wait = max(min(delay, deadline - time.monotonic()), 0.0)
        if batch.timer is not None:
            batch.timer.cancel()
        batch.timer = loop.call_later(wait, self._due, batch.provider.name, deadline)

    def _due(self, name: str, deadline: float) -> None:
        batch = self._open.get(name)
        if batch is None:
            return
        if self._incoming > 0 and time.monotonic() < deadline:
            self._arm(batch, asyncio.get_running_loop())  # more are coming: wait for them
            return
        self._flush(name, "no more coming" if self._incoming == 0 else "waited longest")

    def _flush(self, name: str, why: str) -> None:
        batch = self._open.pop(name, None)
        if batch is None:
            return
        # Per batch, not per message: where a burst's time goes (PBXSMS_LOG_LEVEL=DEBUG).
        log.debug("batch of %d for %s goes out (%s) %.0f ms after its first message",
                  len(batch.items), name, why, 1000 * (time.monotonic() - batch.started))
        if batch.timer is not None:
            batch.timer.cancel()
        task = asyncio.create_task(self._send(batch), name=f"send-batch:{name}")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: _Batch) -> None:
        items = [(message, future) for message, future in batch.items if not future.done()]
        if not items:
            return
        messages = [message for message, _ in items]
        began = time.monotonic()
        results = await _send_batch(batch.provider, messages)
        log.debug("batch of %d for %s answered in %.0f ms", len(messages),
                  batch.provider.name, 1000 * (time.monotonic() - began))
        for (_, future), result in zip(items, results, strict=True):
            if not future.done():
                future.set_result(result)


async def _send_batch(provider: Provider, messages: list[OutboundMessage]
                      ) -> Sequence[SendResult]:
    """The provider's results, one per message; a broken provider makes them ambiguous."""
    try:
        results = list(await provider.send_batch(messages))
    except Exception as error:
        log.exception("provider %s failed on a batch of %d", provider.name, len(messages))
        reason = f"provider error: {type(error).__name__}: {error}"
        return [SendResult(Outcome.AMBIGUOUS, reason=reason)] * len(messages)
    if len(results) != len(messages):
        log.error("provider %s answered %d results for %d messages", provider.name,
                  len(results), len(messages))
        missing = SendResult(Outcome.AMBIGUOUS, reason="no result from the provider")
        results = (results + [missing] * len(messages))[:len(messages)]
    return results
