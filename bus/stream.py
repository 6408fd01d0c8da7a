"""The one JetStream stream, `sms.>`, created or updated idempotently at start, and reads
of the few messages stored on one of its subjects (`SubjectReader`)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from pbxsms.bus.publish import Publisher, batch_messages

log = logging.getLogger("pbxsms.bus.stream")

SUBJECTS = ["sms.>"]


@dataclass(frozen=True)
class StreamSettings:
    """What the operator may tune about the stream (`[bus]` in the TOML file)."""

    name: str = "SMS"
    max_age: float = 14 * 86400.0
    max_bytes: int = 2 * 2**30
    duplicate_window: float = 24 * 3600.0
    replicas: int = 1


def stream_config(settings: StreamSettings) -> StreamConfig:
    # Limits retention: every consumer (app, email, other PBX services) reads the same
    # events independently, and dead letters can point back at the original.
    return StreamConfig(
        name=settings.name,
        subjects=SUBJECTS,
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        # Full, new events are refused (the publisher answers 503) rather than undelivered
        # ones dropped; age still expires the old ones.
        discard=DiscardPolicy.NEW,
        max_age=settings.max_age,
        max_bytes=settings.max_bytes,
        duplicate_window=min(settings.duplicate_window, settings.max_age),
        num_replicas=settings.replicas,
        # Direct gets (`SubjectReader`): in a cluster any replica answers, a follower
        # perhaps a few ms behind the leader: fine for a status read, never for the
        # ledger (its own KV bucket, read from the leader).
        allow_direct=True,
    )


async def ensure_stream(
    js: JetStreamContext, settings: StreamSettings, timeout: float = 20.0
) -> None:
    """Create the stream, or bring an existing one to these settings.

    Retries until `timeout`, because JetStream may still be starting (or electing a
    leader in a cluster) when we first connect.
    """
    config = stream_config(settings)
    deadline = time.monotonic() + timeout
    while True:
        try:
            try:
                info = await js.stream_info(settings.name)
            except NotFoundError:
                await js.add_stream(config)
                log.info("created stream %s for %s", settings.name, SUBJECTS)
                return
            current = info.config
            if (current.max_age, current.max_bytes, current.discard,
                    current.duplicate_window, current.num_replicas, current.subjects,
                    current.allow_direct) != (
                    config.max_age, config.max_bytes, config.discard,
                    config.duplicate_window, config.num_replicas, config.subjects,
                    config.allow_direct):
                await js.update_stream(config)
                log.info("updated stream %s", settings.name)
            return
        except Exception as error:
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"cannot create or update JetStream stream {settings.name}: {error}"
                ) from error
            log.debug("stream not ready yet (%s); retrying", error)
            await asyncio.sleep(0.2)


@dataclass(frozen=True)
class SubjectRead:
    """Messages stored on one subject (sequence, data), oldest first, and how many more
    are stored after them."""

    messages: list[tuple[int, bytes]]
    more: int


class SubjectReader:
    """Reads of the messages stored on one subject of the stream, each one request (a
    batched direct get) through the `Publisher`, whatever the stream holds."""

    def __init__(self, publisher: Publisher, stream: str, timeout: float = 5.0) -> None:
        self._publisher = publisher
        self._subject = f"$JS.API.DIRECT.GET.{stream}"
        self._timeout = timeout

    async def first(self, subject: str, limit: int) -> asyncio.Future[SubjectRead]:
        """Put a read of the oldest `limit` messages on `subject` in flight."""
        request = {"next_by_subj": subject, "batch": limit}
        return await self._publisher.ask_all(self._subject, json.dumps(request).encode(),
                                             _read, self._timeout)

    async def last(self, subject: str) -> asyncio.Future[SubjectRead]:
        """Put a read of the newest message on `subject` in flight."""
        request = {"multi_last": [subject], "batch": 1}
        return await self._publisher.ask_all(self._subject, json.dumps(request).encode(),
                                             _read, self._timeout)


def _read(answers: list[Msg]) -> SubjectRead:
    """The messages of a batched direct get; the last answer says how many more there are."""
    found = batch_messages(answers)
    return SubjectRead([(int((msg.headers or {})["Nats-Sequence"]), msg.data) for msg in found],
                       int((answers[-1].headers or {}).get("Nats-Num-Pending") or 0))
