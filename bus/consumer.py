"""The one durable pull-consumer runner every subscriber uses.

Retries live in JetStream, not in process memory: a transient failure is a `nak` with
exponential backoff, a permanent one is settled at once, and after the last attempt the
event goes to `sms.dead.<consumer>` with the reason before it is acknowledged. The
server-side `max_deliver` is unlimited on purpose: we count attempts ourselves so that a
message whose last attempt died with the process still reaches the dead letters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy
from nats.js.errors import NotFoundError

from pbxsms.bus.direct import subscribe_direct
from pbxsms.bus.filters import Subjects, filters_of, union
from pbxsms.bus.publish import BusError

log = logging.getLogger("pbxsms.bus.consumer")


class Retry(Exception):
    """A transient failure: try again later (after `delay` seconds, else backoff)."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class Permanent(Exception):
    """A failure no retry can fix: dead-letter at once."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts and backoff; `[bus]` in the TOML file sets the defaults."""

    max_deliver: int = 10
    backoff_initial: float = 1.0
    backoff_max: float = 300.0
    ack_wait: float = 30.0
    max_in_flight: int = 64

    def delay(self, attempt: int) -> float:
        """Exponential backoff with 10% jitter, so retries of a burst do not stampede."""
        base = min(self.backoff_initial * 2.0 ** max(attempt - 1, 0), self.backoff_max)
        return base * random.uniform(0.9, 1.1)  # noqa: S311 (jitter, not crypto)


@dataclass(eq=False)  # each delivery is itself: kept in a set while its handler runs
class Delivery:
    """One delivery of one stored event to a handler."""

    msg: Msg
    consumer: str
    attempt: int
    max_deliver: int
    stream_seq: int
    # When JetStream last heard that this delivery is being worked on.
    _progress_at: float = field(default_factory=time.monotonic)

    @property
    def subject(self) -> str:
        return self.msg.subject

    @property
    def data(self) -> bytes:
        return self.msg.data

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.msg.headers or {})

    @property
    def last_attempt(self) -> bool:
        return self.attempt >= self.max_deliver

    async def in_progress(self) -> None:
        """Tell JetStream we are still working, so it does not redeliver yet."""
        await self.msg.in_progress()

    @property
    def log_extra(self) -> dict[str, str]:
        """`extra` for log lines about this event: its `id` (ours), when it has one."""
        try:
            event = json.loads(self.data)
        except ValueError:
            return {}
        event_id = event.get("id") if isinstance(event, dict) else None
        return {"msg_id": event_id} if isinstance(event_id, str) else {}


# Tokens of a JetStream ack subject: `$JS.ACK.<stream>.<consumer>.<delivered>.<stream
# seq>...` (9 tokens), or with a domain and account hash after `ACK` (11 or more).
_V1_TOKENS = 9
_V1_DELIVERED = 4
_V2_DELIVERED = 6


def ack_numbers(msg: Msg) -> tuple[int, int]:
    """(delivery attempt, stream sequence) of a JetStream delivery, read from its ack
    subject: the two numbers the runner needs, without nats-py's `metadata` (a dataclass
    with a timestamp, about 4 us a delivery)."""
    tokens = msg.reply.split(".")
    at = _V1_DELIVERED if len(tokens) == _V1_TOKENS else _V2_DELIVERED
    try:
        if tokens[0] == "$JS" and tokens[1] == "ACK":
            return int(tokens[at]), int(tokens[at + 1])
    except (IndexError, ValueError):
        pass
    meta = msg.metadata  # raises for a subject that is no ack subject
    return meta.num_delivered, meta.sequence.stream


Handler = Callable[[Delivery], Awaitable[None]]
# How often a consumer still reading its old filters' backlog asks how far it got.
NARROW_CHECK_INTERVAL = 1.0
OutcomeCallback = Callable[[str, str], None]
DeadLetterer = Callable[[Delivery, str], Awaitable[None]]


class ConsumerRunner:
    """Runs `handler` for every event on `subjects` (one filter or several), under the
    durable name `name`."""

    def __init__(
        self,
        nc: NATS,
        js: JetStreamContext,
        stream: str,
        name: str,
        subjects: Subjects,
        handler: Handler,
        policy: RetryPolicy,
        dead_letter: DeadLetterer,
        on_outcome: OutcomeCallback | None = None,
        deliver_policy: DeliverPolicy = DeliverPolicy.NEW,
    ) -> None:
        self.nc, self.js, self.stream = nc, js, stream
        self.name, self.handler = name, handler
        self.filters = filters_of(subjects)
        self.policy = policy
        self.dead_letter = dead_letter
        self.on_outcome = on_outcome or (lambda consumer, outcome: None)
        self.deliver_policy = deliver_policy
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[Delivery] = set()
        # Stream sequence of each event a handler runs for → the Event set when it ends,
        # made only when a redelivery of it waits (None until then).
        self._handling: dict[int, asyncio.Event | None] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._progress_task: asyncio.Task[None] | None = None
        self._narrow_task: asyncio.Task[None] | None = None
        self._sub: Subscription | None = None
        self._inbox = ""
        self._stopping = False
        self._slot_freed = asyncio.Event()
        # The one outstanding pull request: how many messages it may still bring, and
        # until when we trust the server still holds it.
        self._requested = 0
        self._request_deadline = 0.0
        self._request_ended = asyncio.Event()
        self._pause_until = 0.0

    async def start(self) -> None:
        """Create or update the durable consumer and start pulling."""
        filters, backlog_to = await self._filters_to_start_with()
        await self.js.add_consumer(self.stream, self._config(filters))
        self._inbox = self.nc.new_inbox()
        # Each delivery starts its handler's task as it is read (bus/direct.py).
        self._sub = await subscribe_direct(self.nc, self._inbox, self._on_message)
        self._loop_task = asyncio.create_task(self._pull_loop(), name=f"consumer:{self.name}")
        self._progress_task = asyncio.create_task(self._progress_loop(),
                                                  name=f"consumer:{self.name}:progress")
        if backlog_to:
            self._narrow_task = asyncio.create_task(self._narrow_after(backlog_to),
                                                    name=f"consumer:{self.name}:narrow")
        log.info("consumer %s started on %s", self.name, ", ".join(filters))

    def _config(self, filters: tuple[str, ...]) -> ConsumerConfig:
        one = len(filters) == 1
        return ConsumerConfig(
            name=self.name,
            durable_name=self.name,
            filter_subject=filters[0] if one else None,
            filter_subjects=None if one else list(filters),
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.policy.ack_wait,
            max_deliver=-1,
            max_ack_pending=max(self.policy.max_in_flight * 4, 1000),
            deliver_policy=self.deliver_policy,
        )

    async def _filters_to_start_with(self) -> tuple[tuple[str, ...], int]:
        """The filters to create or update the consumer with, and the stream sequence of
        the last event its old filters match that it has not acknowledged (0: none, the
        asked filters at once)."""
        try:
            info = await self.js.consumer_info(self.stream, self.name)
        except NotFoundError:
            return self.filters, 0
        old = _filters_of_info(info)
        if set(old) == set(self.filters):
            return self.filters, 0
        last = await self._last_matching(old)
        if last <= info.ack_floor.stream_seq:
            log.info("consumer %s: filters %s become %s", self.name, ", ".join(old),
                     ", ".join(self.filters))
            return self.filters, 0
        both = union(old, self.filters)
        log.info("consumer %s: reading %s until every event up to %d is acknowledged, then "
                 "only %s", self.name, ", ".join(both), last, ", ".join(self.filters))
        return both, last

    async def _last_matching(self, filters: tuple[str, ...]) -> int:
        """The stream sequence of the last event stored on any of `filters` (0: none)."""
        last = 0
        for subject in filters:
            try:
                found = await self.js.get_last_msg(self.stream, subject)
            except NotFoundError:
                continue
            last = max(last, found.seq or 0)
        return last

    async def _narrow_after(self, backlog_to: int) -> None:
        """Narrow the consumer to its asked filters once everything up to `backlog_to` is
        acknowledged (the consumer's position is kept; later events of the old filters
        are ones the new publishers no longer store there)."""
        while True:
            try:
                info = await self.js.consumer_info(self.stream, self.name)
                if info.ack_floor.stream_seq >= backlog_to:
                    await self.js.add_consumer(self.stream, self._config(self.filters))
                    log.info("consumer %s: caught up to %d, now on %s", self.name,
                             backlog_to, ", ".join(self.filters))
                    return
            except Exception as error:  # the bus is away: narrowing later is as safe
                log.warning("consumer %s: filters not narrowed yet: %s", self.name, error)
            await asyncio.sleep(NARROW_CHECK_INTERVAL)

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop pulling, let in-flight handlers finish (up to `drain_timeout`)."""
        self._stopping = True
        if self._loop_task:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=drain_timeout)
            for task in pending:
                task.cancel()  # unacked: JetStream redelivers it after ack_wait
        for ticker in (self._progress_task, self._narrow_task):
            if ticker:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
        log.info("consumer %s stopped", self.name)

    async def _pull_loop(self) -> None:
        expires = 5.0
        while not self._stopping:
            now = time.monotonic()
            if self._requested > 0 and now < self._request_deadline:
                # Wait for this request to end (filled, expired) or time out locally.
                self._request_ended.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._request_ended.wait(),
                                           self._request_deadline - now)
                continue
            if now < self._pause_until:
                await asyncio.sleep(self._pause_until - now)
                continue
            free = self.policy.max_in_flight - len(self._tasks)
            if free < max(1, self.policy.max_in_flight // 4) and self._tasks:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            request = {"batch": free, "expires": int(expires * 1e9),
                       "idle_heartbeat": int(expires / 2 * 1e9)}
            self._requested = free
            self._request_deadline = time.monotonic() + expires + 2.0
            try:
                await self.nc.publish(
                    f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self.name}",
                    json.dumps(request).encode(), reply=self._inbox)
            except Exception as error:
                log.warning("consumer %s cannot request messages: %s", self.name, error)
                self._requested = 0
                await asyncio.sleep(1.0)

    def _on_message(self, msg: Msg) -> None:
        status = (msg.headers or {}).get("Status") if msg.headers else None
        if status is not None or not msg.reply:
            # 100 heartbeat keeps the request alive; 404/408/409 end it.
            if status and status != "100":
                if status == "409":  # e.g. consumer deleted: do not spin on it
                    log.warning("consumer %s: %s", self.name,
                                (msg.headers or {}).get("Description", status))
                    self._pause_until = time.monotonic() + 1.0
                self._requested = 0
                self._request_ended.set()
            elif status == "100":
                self._request_deadline = time.monotonic() + 5.0
            return
        self._requested -= 1
        if self._requested <= 0:
            self._request_ended.set()
        task = asyncio.create_task(self._handle(msg))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slot_freed.set()

    async def _handle(self, msg: Msg) -> None:
        attempt, stream_seq = ack_numbers(msg)
        delivery = Delivery(msg=msg, consumer=self.name, attempt=attempt,
                            max_deliver=self.policy.max_deliver, stream_seq=stream_seq)
        try:
            if delivery.attempt > self.policy.max_deliver:
                # The last attempt never settled (the process died or stalled).
                raise Permanent(f"no outcome after {self.policy.max_deliver} attempts")
            await self._run_with_progress(delivery)
        except Permanent as error:
            await self._give_up(delivery, error.reason)
            return
        except Retry as error:
            await self._retry(delivery, error.reason, error.delay)
            return
        except asyncio.CancelledError:
            raise
        except (NatsError, BusError, TimeoutError, OSError) as error:
            # The bus or a remote side is briefly away (a leader election, a restart):
            # expected, retried; a traceback would only hide real bugs in the log.
            log.warning("consumer %s: seq %d will be retried: %s: %s", self.name,
                        delivery.stream_seq, type(error).__name__, error,
                        extra=delivery.log_extra)
            await self._retry(delivery, f"{type(error).__name__}: {error}", None)
            return
        except Exception as error:
            log.exception("consumer %s: handler failed on seq %d", self.name,
                          delivery.stream_seq, extra=delivery.log_extra)
            await self._retry(delivery, f"{type(error).__name__}: {error}", None)
            return
        await self._settle(msg.ack())
        self.on_outcome(self.name, "ack")

    async def _run_with_progress(self, delivery: Delivery) -> None:
        # One ticker per consumer (`_progress_loop`) reports the slow ones: cheaper than
        # a timer beside every handler.
        seq = delivery.stream_seq
        self._running.add(delivery)
        try:
            while seq in self._handling:
                # A redelivery of an event this process is still handling: its in_progress
                # could not reach the bus (an outage), so ack_wait ran out. Running both at
                # once could reach a person twice; after the first, the ledger answers.
                # Only such a wait makes an Event: none for the usual, lone delivery.
                waiter = self._handling[seq]
                if waiter is None:
                    waiter = self._handling[seq] = asyncio.Event()
                await waiter.wait()
            self._handling[seq] = None
            try:
                await self.handler(delivery)
            finally:
                waiter = self._handling.pop(seq, None)
                if waiter is not None:
                    waiter.set()
        finally:
            self._running.discard(delivery)

    async def _progress_loop(self) -> None:
        """Tell JetStream about each handler still running after a third of `ack_wait`
        (a slow remote side), so it keeps the message ours instead of redelivering it."""
        interval = max(self.policy.ack_wait / 3, 0.5)
        while True:
            await asyncio.sleep(interval / 2)
            now = time.monotonic()
            for delivery in [d for d in self._running if now - d._progress_at >= interval]:
                delivery._progress_at = now
                try:
                    await delivery.in_progress()
                except Exception as error:  # the bus is away: the redelivery is handled
                    log.debug("consumer %s: in_progress for seq %d: %s", self.name,
                              delivery.stream_seq, error)

    async def _retry(self, delivery: Delivery, reason: str, delay: float | None) -> None:
        if delivery.last_attempt:
            await self._give_up(delivery, f"{reason} (after {delivery.attempt} attempts)")
            return
        wait = delay if delay is not None else self.policy.delay(delivery.attempt)
        log.info("consumer %s: seq %d attempt %d failed, retry in %.1fs: %s", self.name,
                 delivery.stream_seq, delivery.attempt, wait, reason, extra=delivery.log_extra)
        await self._settle(delivery.msg.nak(delay=wait))
        self.on_outcome(self.name, "retry")

    async def _give_up(self, delivery: Delivery, reason: str) -> None:
        try:
            await self.dead_letter(delivery, reason)
        except Exception as error:
            # Not stored as a dead letter: keep the original and try again later.
            log.error("consumer %s: dead letter for seq %d not stored (%s); will retry",
                      self.name, delivery.stream_seq, error, extra=delivery.log_extra)
            await self._settle(delivery.msg.nak(delay=self.policy.backoff_max))
            self.on_outcome(self.name, "retry")
            return
        log.warning("consumer %s: seq %d dead-lettered: %s", self.name,
                    delivery.stream_seq, reason, extra=delivery.log_extra)
        await self._settle(delivery.msg.term())
        self.on_outcome(self.name, "dead")

    async def _settle(self, action: Awaitable[None]) -> None:
        try:
            await action
        except Exception as error:
            # The ack did not leave: JetStream will redeliver, and handlers dedupe.
            log.warning("consumer %s: ack not sent: %s", self.name, error)


def _filters_of_info(info: ConsumerInfo) -> tuple[str, ...]:
    config = info.config
    if config.filter_subjects:
        return tuple(config.filter_subjects)
    return (config.filter_subject,) if config.filter_subject else (">",)
