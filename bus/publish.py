"""Publishing: one function, deduplicated by `Nats-Msg-Id`, returning only after the PubAck."""

from __future__ import annotations

from dataclasses import dataclass

from nats.errors import Error as NatsError
from nats.js import JetStreamContext

MSG_ID = "Nats-Msg-Id"


class PublishError(Exception):
    """The event is not known to be stored; callers answer 503 or retry later."""


@dataclass(frozen=True)
class Published:
    """Where the event landed, and whether JetStream had it already."""

    seq: int
    duplicate: bool


async def publish(
    js: JetStreamContext,
    subject: str,
    payload: bytes,
    msg_id: str,
    timeout: float = 5.0,
    headers: dict[str, str] | None = None,
) -> Published:
    """Store `payload` on `subject` once per `msg_id`; PublishError when not stored."""
    all_headers = {MSG_ID: msg_id, **(headers or {})}
    try:
        ack = await js.publish(subject, payload, timeout=timeout, headers=all_headers)
    except (NatsError, TimeoutError, OSError) as error:
        raise PublishError(f"{type(error).__name__}: {error}".rstrip(": ")) from error
    return Published(seq=ack.seq, duplicate=bool(ack.duplicate))
