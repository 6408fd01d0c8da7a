"""The running gateway: configuration, plugins, the NATS connection and the consumers.

Plugins receive the Runtime in their hooks and use it to publish and read settings.
`runtime.config` is replaced whole on reload, so read it per message, never cache it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from aiohttp import ClientSession, ClientTimeout
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from pbxsms.bus.consumer import ConsumerRunner, Delivery, RetryPolicy
from pbxsms.bus.embedded import EMBEDDED_DIR, EmbeddedNats
from pbxsms.bus.kv import Bucket, ensure_kv, wait_all
from pbxsms.bus.publish import Published, Publisher, PublishError
from pbxsms.bus.stream import StreamSettings, SubjectReader, ensure_stream
from pbxsms.core.config.loader import hide_url_password
from pbxsms.core.health import metrics
from pbxsms.core.inbound.ledger import LEGACY_BUCKET as LEGACY_LEDGER
from pbxsms.core.inbound.ledger import LegacyLedger
from pbxsms.core.model.events import DeadLetter, Event, StatusEvent
from pbxsms.core.stores.conversations import CONVERSATIONS_BUCKET, Conversations
from pbxsms.core.stores.numbers import NUMBERS_BUCKET, NumberStore
from pbxsms.core.stores.optouts import OPTOUTS_BUCKET, OptOutStore
from pbxsms.core.stores.states import LEGACY_BUCKET, StateIndex, move_legacy_index
from pbxsms.core.stores.status import (
    MESSAGES_BUCKET,
    PROVIDER_IDS_BUCKET,
    Settled,
    StatusRecord,
    StatusStore,
    retire_fold_consumer,
)

if TYPE_CHECKING:
    from pbxsms.core.config.settings import Config
    from pbxsms.core.plugins import Plugins
    from pbxsms.core.registry import Provider

log = logging.getLogger("pbxsms.runtime")


class Runtime:
    """One pbxsms process's shared state."""

    def __init__(self, config: Config, plugins: Plugins) -> None:
        self.config = config
        self.plugins = plugins
        self.embedded: EmbeddedNats | None = None
        self.nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._publisher: Publisher | None = None
        self.stream_ready = False
        self.consumers: list[ConsumerRunner] = []
        self.consumer_closes: list[Callable[[], Awaitable[None]]] = []
        self.providers: dict[str, Provider] = {}
        self._http: ClientSession | None = None
        self._status: StatusStore | None = None
        self._numbers: NumberStore | None = None
        self._optouts: OptOutStore | None = None
        # The older versions' delivery ledger, while it holds entries (core/inbound/ledger.py).
        self.legacy_ledger: LegacyLedger | None = None
        self.started_at = time.monotonic()
        # Set when the server begins to stop: long-lived answers (live pages) end on it,
        # so that stopping does not wait for browsers to hang up.
        self.stopping = asyncio.Event()

    # -- the bus ------------------------------------------------------------------

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("the bus is not connected yet")
        return self._js

    @property
    def publisher(self) -> Publisher:
        """Every publish goes through it (see `publish`); KV writes may use it directly."""
        if self._publisher is None:
            raise RuntimeError("the bus is not connected yet")
        return self._publisher

    async def bucket(self, name: str, ttl: float | None = None) -> Bucket:
        """A KV bucket (created when missing) whose reads and writes are pipelined."""
        bus = self.config.file.bus
        kv = await ensure_kv(self.js, name, ttl=ttl, replicas=bus.replicas)
        return Bucket(kv, self.publisher, name, timeout=bus.publish_timeout)

    @property
    def status(self) -> StatusStore:
        """Message status records (KV), ready once connected."""
        if self._status is None:
            raise RuntimeError("the bus is not connected yet")
        return self._status

    @status.setter
    def status(self, store: StatusStore) -> None:
        self._status = store

    @property
    def numbers(self) -> NumberStore:
        """Message settings per number (KV, read from memory), ready once connected."""
        if self._numbers is None:
            raise RuntimeError("the bus is not connected yet")
        return self._numbers

    @property
    def optouts(self) -> OptOutStore:
        """Opt-outs per (our number, customer) (KV), ready once connected."""
        if self._optouts is None:
            raise RuntimeError("the bus is not connected yet")
        return self._optouts

    @property
    def stream(self) -> str:
        return self.config.file.bus.stream

    async def connect(self) -> None:
        """Start the embedded server when NATS_URL is unset, connect, ensure the stream."""
        core = self.config.core
        servers = core.nats_servers()
        if not servers:
            self.embedded = EmbeddedNats(core.embedded_nats_port, core.data_dir / EMBEDDED_DIR)
            await self.embedded.start()
            servers = [self.embedded.url]
        self.nc = await _connect(servers, explicit=not self.embedded)
        self._js = self.nc.jetstream(timeout=self.config.file.bus.publish_timeout)
        self._publisher = Publisher(self.nc)
        await self._publisher.start()
        bus = self.config.file.bus
        await ensure_stream(self.js, StreamSettings(
            name=bus.stream, max_age=bus.max_age, max_bytes=int(bus.max_bytes),
            duplicate_window=bus.duplicate_window, replicas=bus.replicas))
        messages, provider_ids = [await self.bucket(name, ttl=bus.max_age)
                                  for name in (MESSAGES_BUCKET, PROVIDER_IDS_BUCKET)]
        states = await StateIndex.open(lambda name: self.bucket(name, ttl=bus.max_age))
        await move_legacy_index(self.js, states, lambda: self.bucket(LEGACY_BUCKET))
        self.status = StatusStore(messages, provider_ids, states,
                                  max_history=bus.status_history,
                                  events=SubjectReader(self._publisher, bus.stream,
                                                       bus.publish_timeout))
        await retire_fold_consumer(self.js, bus.stream, self.status)
        self.legacy_ledger = await LegacyLedger.open(
            self.js, lambda: self.bucket(LEGACY_LEDGER, ttl=bus.max_age))
        # Message settings are configuration, not traffic: no TTL. A conversation is
        # forgotten `conversation_ttl` after the customer's last text.
        self._numbers = NumberStore(
            self.nc, await ensure_kv(self.js, NUMBERS_BUCKET, replicas=bus.replicas),
            Conversations(self.nc, self.js, await self.bucket(CONVERSATIONS_BUCKET,
                                                              ttl=bus.conversation_ttl)),
            region=lambda: self.config.core.default_region,
            providers=lambda: self.providers.keys())
        await self._numbers.start()
        # A customer's STOP holds until their START, however long: no TTL.
        self._optouts = OptOutStore(await self.bucket(OPTOUTS_BUCKET))
        self.stream_ready = True

    async def close(self) -> None:
        """Close the connection and stop the embedded server, if any."""
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._numbers is not None:
            await self._numbers.stop()
        if self._status is not None:
            await self._status.close()  # its sweep writes through the connection
        if self.nc is not None and not self.nc.is_closed:
            try:
                await asyncio.wait_for(self.nc.drain(), 5.0)
            except Exception as error:
                log.debug("drain: %s", error)
                with contextlib.suppress(Exception):
                    await self.nc.close()
        self.stream_ready = False
        if self.embedded is not None:
            await self.embedded.stop()
            self.embedded = None

    async def publish(self, subject: str, event: Event | bytes, msg_id: str) -> Published:
        """Store an event once per `msg_id`; PublishError when it is not stored."""
        return await self._stored(subject, await self._send(subject, event, msg_id))

    async def _send(self, subject: str, event: Event | bytes,
                    msg_id: str) -> asyncio.Future[Published]:
        """The publish put in flight (see `_stored`)."""
        payload = event.to_json() if isinstance(event, Event) else event
        try:
            return await self.publisher.send(
                subject, payload, msg_id, timeout=self.config.file.bus.publish_timeout)
        except (PublishError, RuntimeError) as error:
            metrics.PUBLISH_FAILURES.labels(metrics.subject_family(subject)).inc()
            raise PublishError(str(error)) from error

    async def _stored(self, subject: str, sent: asyncio.Future[Published]) -> Published:
        """The PubAck of a publish in flight, counted; PublishError when not stored."""
        family = metrics.subject_family(subject)
        try:
            result = await sent
        except PublishError as error:
            metrics.PUBLISH_FAILURES.labels(family).inc()
            raise PublishError(str(error)) from error
        metrics.labelled(metrics.EVENTS_PUBLISHED, family,
                         "true" if result.duplicate else "false").inc()
        return result

    async def publish_status(self, status: StatusEvent, key: str | None = None,
                             settled: Mapping[str, Settled] | None = None) -> Published:
        """Publish a state change on `sms.status.<id>`, deduplicated by `key` (default: per
        state, channel and attempt), and fold it into the message's status record with
        the delivery ledger's `settled` entries, if any. Both are awaited, in one round
        trip (the publish is in flight while the record is written); PublishError when
        either is not stored (the caller retries both: each is idempotent, a repeat of the
        event carries the same key).
        """
        status.key = key or _status_key(status)
        subject = f"sms.status.{status.id}"
        sent = await self._send(subject, status, status.key)
        failure: Exception | None = None
        try:
            await self.status.apply(status, repair=False, settled=settled)
        except Exception as error:
            failure = error
        except BaseException:  # cancelled: the PubAck is nobody's now
            sent.add_done_callback(_retrieved)
            raise
        published = await self._stored(subject, sent)
        if failure is not None:
            metrics.PUBLISH_FAILURES.labels("sms.status").inc()
            if isinstance(failure, PublishError):
                raise failure
            raise PublishError(f"status record not stored: {failure!r}") from failure
        return published

    async def publish_status_unchanged(self, status: StatusEvent,
                                       expect: Callable[[StatusRecord | None], bool]
                                       ) -> Published | None:
        """`publish_status` of a state that may only follow the record as this process
        knows it (`StatusStore.apply_unchanged`): the record is written first, and the
        event published only once it is; None, nothing written or published, when the
        record is not as known or fails `expect`. PublishError when either is not
        stored, as for `publish_status`."""
        status.key = _status_key(status)
        try:
            indexing = await self.status.apply_unchanged(status, expect)
        except PublishError:
            metrics.PUBLISH_FAILURES.labels("sms.status").inc()
            raise
        except Exception as error:
            metrics.PUBLISH_FAILURES.labels("sms.status").inc()
            raise PublishError(f"status record not stored: {error!r}") from error
        if indexing is None:
            return None
        # The event in flight with the record's state index writes: one round trip.
        subject = f"sms.status.{status.id}"
        sent: asyncio.Future[Published] | None = None
        try:
            sent = await self._send(subject, status, status.key)
        finally:  # the index writes are awaited whatever happened to the publish
            try:
                await wait_all(indexing)
            except Exception as error:
                if sent is not None:
                    sent.add_done_callback(_retrieved)
                metrics.PUBLISH_FAILURES.labels("sms.status").inc()
                raise PublishError(f"status index not stored: {error!r}") from error
            except BaseException:  # cancelled: the PubAck is nobody's now
                if sent is not None:
                    sent.add_done_callback(_retrieved)
                raise
        return await self._stored(subject, sent)

    # -- consumers ----------------------------------------------------------------

    def retry_policy(self, max_deliver: int | None = None,
                     max_in_flight: int | None = None) -> RetryPolicy:
        bus = self.config.file.bus
        return RetryPolicy(max_deliver=max_deliver or bus.max_deliver,
                           backoff_initial=bus.backoff_initial, backoff_max=bus.backoff_max,
                           ack_wait=bus.ack_wait,
                           max_in_flight=max_in_flight or bus.max_in_flight)

    async def start_consumers(self) -> None:
        """Start every consumer the plugins declared."""
        assert self.nc is not None
        specs = self.plugins.consumers(self)
        # Known before any starts, so a start that fails half-way still closes them all.
        self.consumer_closes = [spec.close for spec in specs if spec.close is not None]
        for spec in specs:
            runner = ConsumerRunner(
                self.nc, self.js, self.stream, spec.name, spec.subject, spec.handler,
                self.retry_policy(spec.max_deliver, spec.max_in_flight), self.dead_letter,
                _count_outcome, DeliverPolicy.ALL if spec.from_start else DeliverPolicy.NEW)
            await runner.start()
            self.consumers.append(runner)

    async def stop_consumers(self) -> None:
        """Stop every consumer, then await each spec's `close` (its handler is idle by then)."""
        await asyncio.gather(*(runner.stop() for runner in self.consumers))
        self.consumers.clear()
        closes, self.consumer_closes = self.consumer_closes, []
        for close in closes:
            try:
                await close()
            except Exception:
                log.exception("closing a consumer's resources failed")

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Store the original event and the reason on `sms.dead.<consumer>`."""
        original = _json_or_text(delivery.data)
        letter = DeadLetter(consumer=delivery.consumer, subject=delivery.subject,
                            stream_seq=delivery.stream_seq, attempts=delivery.attempt,
                            reason=reason, original=original)
        if isinstance(original, dict) and isinstance(original.get("id"), str):
            letter.id = original["id"]
        await self.publish(f"sms.dead.{delivery.consumer}", letter,
                           f"dead:{delivery.consumer}:{delivery.stream_seq}")
        metrics.DEAD_LETTERS.labels(delivery.consumer).inc()

    async def refresh_backlog(self) -> None:
        """Read each consumer's backlog from the server into the gauges (at scrape time)."""

        async def one(runner: ConsumerRunner) -> None:
            try:
                info = await self.js.consumer_info(self.stream, runner.name, timeout=2.0)
            except Exception as error:  # a scrape must not fail because the bus is slow
                log.debug("consumer info for %s: %s", runner.name, error)
                return
            metrics.CONSUMER_PENDING.labels(runner.name).set(info.num_pending or 0)
            metrics.CONSUMER_ACK_PENDING.labels(runner.name).set(info.num_ack_pending or 0)

        await asyncio.gather(*(one(runner) for runner in self.consumers))

    # -- shared services ----------------------------------------------------------

    @property
    def http(self) -> ClientSession:
        """One HTTP client for every outbound call (connection pooling)."""
        if self._http is None:
            self._http = ClientSession(timeout=ClientTimeout(total=30))
        return self._http

    @property
    def bus_connected(self) -> bool:
        """Whether NATS is connected now."""
        return self.nc is not None and self.nc.is_connected

    def require_bus(self) -> None:
        """PublishError at once while NATS is disconnected: a new publish or read would
        wait out its whole timeout, holding the caller's connection; one already in flight
        is left to finish when the bus comes back."""
        if not self.bus_connected:
            raise PublishError("not connected to NATS")

    def readiness(self) -> list[str]:
        """Why this instance cannot serve now; empty when it can."""
        reasons = []
        if not self.bus_connected:
            reasons.append("not connected to NATS")
        elif not self.stream_ready:
            reasons.append(f"JetStream stream {self.stream} not ready")
        return reasons + self.plugins.readiness(self)

    async def reload(self, new: Config) -> None:
        """Swap in re-read settings; the next message uses them, nothing in flight stops."""
        old, self.config = self.config, new
        if (old.core.nats_url, old.core.http_port, old.core.http_host) != (
                new.core.nats_url, new.core.http_port, new.core.http_host):
            log.warning("NATS_URL, PBXSMS_HTTP_HOST and PBXSMS_HTTP_PORT apply at the next "
                        "restart, not on reload")
        await self.plugins.settings_reloaded(self, old, new)


def _json_or_text(data: bytes) -> object:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


def _retrieved(future: asyncio.Future[Published]) -> None:
    if not future.cancelled():
        future.exception()


def _count_outcome(consumer: str, outcome: str) -> None:
    metrics.labelled(metrics.CONSUMER_OUTCOMES, consumer, outcome).inc()


async def _connect(servers: list[str], explicit: bool, timeout: float = 30.0) -> NATS:
    """Connect, retrying until `timeout`; afterwards the client reconnects forever."""

    async def disconnected() -> None:
        if nc_box and not nc_box[0].is_closed and not nc_box[0].is_draining:
            log.warning("disconnected from NATS; reconnecting")

    async def reconnected() -> None:
        log.info("reconnected to NATS")

    async def error(e: Exception) -> None:
        log.debug("NATS: %s", e)

    nc_box: list[NATS] = []
    where = hide_url_password(",".join(servers))  # NATS_URL may carry a password
    deadline = time.monotonic() + timeout
    while True:
        try:
            nc_box.append(NATS())
            await nc_box[0].connect(
                servers=servers, name="pbxsms", connect_timeout=2,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,  # type: ignore[arg-type]  # float works
                disconnected_cb=disconnected, reconnected_cb=reconnected, error_cb=error)
            return nc_box[0]
        except Exception as e:
            nc_box.clear()
            if time.monotonic() >= deadline:
                hint = "check NATS_URL" if explicit else "see the embedded server's log"
                raise ConnectionError(
                    f"cannot connect to NATS at {where}: {e} ({hint})") from e
            log.warning("NATS at %s not reachable yet (%s); retrying", where, e)
            await asyncio.sleep(1.0)


def _status_key(status: StatusEvent) -> str:
    """A status event's default key: one per state, channel and attempt."""
    return f"status:{status.id}:{status.channel or '-'}:{status.state}:{status.attempt or 0}"
