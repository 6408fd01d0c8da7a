"""The one JetStream stream, `sms.>`, created or updated idempotently at start."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

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
                    current.duplicate_window, current.num_replicas, current.subjects) != (
                    config.max_age, config.max_bytes, config.discard,
                    config.duplicate_window, config.num_replicas, config.subjects):
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
