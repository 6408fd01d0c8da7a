"""Finding what a message said: its own event in the stream, or its dead letter.

A status record keeps the stream sequence of its message's event; a message whose
record lacks it is found among the dead letters on `sms.dead.<consumer>`, which carry
the original event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from nats.js.errors import NotFoundError
from pydantic import ValidationError

from pbxsms.core.model.events import DeadLetter, InboundMessage, OutboundRequest
from pbxsms.core.serve.runtime import Runtime
from pbxsms.core.stores.status import StatusRecord

StoredMessage = InboundMessage | OutboundRequest


async def stored_message(runtime: Runtime, record: StatusRecord) -> StoredMessage | None:
    """The event of the message `record` is about; None when the stream no longer has it."""
    model: type[StoredMessage] = (InboundMessage if record.direction == "inbound"
                                  else OutboundRequest)
    if record.stream_seq:
        try:
            raw = await runtime.js.get_msg(runtime.stream, record.stream_seq)
        except NotFoundError:
            raw = None  # past the stream's max age
        if raw is not None and raw.data:
            try:
                event = model.model_validate_json(raw.data)
            except ValidationError:
                event = None
            if event is not None and event.id == record.id:
                return event
    async for letter in dead_letters(runtime):
        if letter.id == record.id and _carries(letter, record.direction):
            try:
                return model.model_validate(letter.original)
            except ValidationError:
                return None
    return None


async def dead_letters(runtime: Runtime, subject: str = "sms.dead.>"
                       ) -> AsyncIterator[DeadLetter]:
    """Every dead letter still in the stream, oldest first (one read each: they are few)."""
    seq = 1
    while True:
        try:
            raw = await runtime.js.get_msg(runtime.stream, seq, subject=subject, next=True)
        except NotFoundError:
            return
        seq = (raw.seq or seq) + 1
        try:
            yield DeadLetter.model_validate_json(raw.data or b"")
        except ValidationError:
            continue  # not ours: nothing to act on


def _carries(letter: DeadLetter, direction: str) -> bool:
    """Whether the letter holds the message itself (not one of its status events)."""
    prefix = "sms.inbound." if direction == "inbound" else "sms.outbound"
    return letter.subject.startswith(prefix) and isinstance(letter.original, dict)
