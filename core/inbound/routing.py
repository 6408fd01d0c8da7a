"""Inbound routing: a message to one of our numbers gets its route, or is stored unroutable.

Nothing is dropped: a message to an unknown or disabled number, or one that came from a
provider other than the number's own, is still stored on its subject (`inbound_subject`,
with no route, so no delivery consumer acts on it), gets the final status `unroutable` with
the reason, and is counted; `GET /api/v1/messages?status=unroutable` lists them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from typing import TYPE_CHECKING

from pbxsms.bus.publish import Published, PublishError
from pbxsms.core.health import metrics
from pbxsms.core.inbound.subjects import inbound_subject
from pbxsms.core.model.events import InboundMessage, Route, State, StatusEvent, uuid_text
from pbxsms.core.stores.numbers import NoRoute

if TYPE_CHECKING:
    from pbxsms.core.serve.runtime import Runtime

log = logging.getLogger("pbxsms.routing")

# Fixed forever: inbound ids are derived from the deduplication key under it.
INBOUND_ID_NAMESPACE = uuid.UUID("6f1c2a3e-8d4b-5e7f-9a0b-1c2d3e4f5a6b")
_NAMESPACE = INBOUND_ID_NAMESPACE.bytes


def inbound_id(msg_id: str) -> str:
    """Our id of an inbound message, derived from its deduplication key (`Nats-Msg-Id`).

    A provider's retry of the same message gets the same id, so whatever is published
    about it (status, conversation) on the retry is about the message that was stored.
    """
    # uuid.uuid5(INBOUND_ID_NAMESPACE, msg_id), without building a UUID object.
    digest = hashlib.sha1(_NAMESPACE + msg_id.encode(), usedforsecurity=False).digest()
    return uuid_text(digest, 5)


async def publish_inbound(runtime: Runtime, message: InboundMessage,
                          msg_id: str) -> Published:
    """Route `message` by its `to` number, store it, and record what follows.

    Sets `message.id` (see `inbound_id`) and `message.route`. A routed message also
    becomes the extension's conversation with the customer; an unroutable one goes
    through `publish_unroutable`. Raises PublishError when it cannot be stored (answer
    503: the provider retries, and the retry is recognised as the same message).
    """
    message.id = inbound_id(msg_id)
    decision = runtime.numbers.route_inbound(message.to, message.provider)
    if isinstance(decision, NoRoute):
        return await publish_unroutable(runtime, message, decision, msg_id)
    message.route = decision
    # The conversation's write goes out first and shares the event's round trip; most
    # texts continue a conversation the bucket holds already, checked without awaiting.
    recording = (None if _conversation_held(runtime, message, decision)
                 else await _start_recording(runtime, message, decision))
    try:
        published = await runtime.publish(inbound_subject(message), message, msg_id)
    finally:
        if recording is not None:
            recording.add_done_callback(lambda done: _recorded(done, message.id))
    if recording is not None:
        # Settled by the time the event's PubAck is here (sent first, same connection):
        # once the webhook answers, a reply finds this conversation.
        with contextlib.suppress(Exception):
            await recording
    return published


def _conversation_held(runtime: Runtime, message: InboundMessage, route: Route) -> bool:
    try:
        return runtime.numbers.conversation_held(route, message.from_)
    except Exception:  # `_start_recording` tries again, and reports what fails
        return False


async def _start_recording(runtime: Runtime, message: InboundMessage,
                           route: Route) -> asyncio.Future[Published] | None:
    try:
        return await runtime.numbers.remember_conversation(route, message.from_)
    except Exception as error:
        _not_recorded(message.id, error)
        return None


def _recorded(done: asyncio.Future[Published], message_id: str) -> None:
    if not done.cancelled() and done.exception() is not None:
        _not_recorded(message_id, done.exception())


def _not_recorded(message_id: str, error: BaseException | None) -> None:
    # The message is stored: a missed conversation only means a reply may leave from the
    # extension's first number. Never fail the webhook for it.
    log.warning("conversation of %s not recorded: %s", message_id, error,
                extra={"msg_id": message_id})


async def publish_unroutable(runtime: Runtime, message: InboundMessage, why: NoRoute,
                             msg_id: str) -> Published:
    """Store `message` without a route, publish its `unroutable` status, count it."""
    message.id = inbound_id(msg_id)
    message.route = None
    published = await runtime.publish(inbound_subject(message), message, msg_id)
    if published.duplicate and await _stored_with_route(runtime, published.seq):
        # A repeat whose content differs from the message stored under its id: the
        # stored one counts, and it was routed; this one must not mark it unroutable.
        return published
    await runtime.publish_status(StatusEvent(
        id=message.id, direction="inbound", state=State.UNROUTABLE, reason=why.reason,
        sender_type=message.sender_type,
        details={"cause": why.cause, "to": message.to, "provider": message.provider},
        stream_seq=published.seq))
    if not published.duplicate:
        metrics.UNROUTABLE.labels(message.provider, why.cause).inc()
        log.warning("inbound message %s is unroutable: %s", message.id, why.reason,
                    extra={"msg_id": message.id})
    return published


async def _stored_with_route(runtime: Runtime, seq: int) -> bool:
    """Whether the message stored at `seq` (a repeat's original) was routed."""
    try:
        stored = await runtime.js.get_msg(runtime.stream, seq)
        return InboundMessage.model_validate_json(stored.data or b"").route is not None
    except ValueError:  # not an inbound message: nothing of ours to protect
        return False
    except Exception as error:  # not knowing is an outage: the provider retries
        raise PublishError(f"cannot read the stored message {seq}: {error!r}") from error
