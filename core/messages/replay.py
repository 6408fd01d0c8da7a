"""Sending again what failed: resend (outbound) and redeliver (inbound), once only.

A resend is a new send with an id derived from the failed one's and a counter, so a
resend asked twice (or by two operators at once) is one send: the second finds the first
(or is deduplicated by `Nats-Msg-Id`); only once that one failed too is there a next,
whether the original or the failed resend is asked for.
A redelivery republishes the inbound event under its own id, routed again by the
message settings of now: each channel's ledger keeps it from reaching a person who
already has it, unless the operator forces it (the ledger entries are forgotten first).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from pbxsms.core.inbound.ledger import Ledger
from pbxsms.core.inbound.subjects import inbound_subject
from pbxsms.core.messages.lookup import stored_message
from pbxsms.core.model.events import InboundMessage, OutboundRequest, State, StatusEvent
from pbxsms.core.outbound.api import queue_outbound
from pbxsms.core.refusal import Refusal
from pbxsms.core.serve.runtime import Runtime
from pbxsms.core.stores.numbers import NoRoute
from pbxsms.core.stores.status import StatusRecord

log = logging.getLogger("pbxsms.messages")

# Fixed forever: resend ids are derived under it. The console's "Send again" derives the
# first resend's id the same way, so the console and the API/CLI resend a message once.
RESEND_NAMESPACE = uuid.UUID("2b7c9e14-5a3f-4d8e-b6c1-0f9a8e7d6c5b")
# Outbound states a resend may follow: nothing reached the person. (`unknown` may have.)
RESENDABLE = frozenset({State.FAILED, State.UNROUTABLE})
# A resend that failed in turn may be resent again: at most this many times.
MAX_RESENDS = 20


def resend_id(message_id: str, n: int = 1) -> str:
    """The id of the `n`th resend of `message_id` (the next is sent only once the one
    before failed)."""
    return str(uuid.uuid5(RESEND_NAMESPACE, message_id if n == 1 else f"{message_id}/{n}"))


def next_resend_id(message_id: str, resend_of: str | None = None) -> str:
    """The id of the resend that carries `message_id` again: the next of its original's
    resends when it is itself a resend (`resend_of` names the original)."""
    if resend_of is None:
        return resend_id(message_id)
    n = next((n for n in range(1, MAX_RESENDS + 1) if resend_id(resend_of, n) == message_id),
             0)
    return resend_id(resend_of, n + 1)


async def _record(runtime: Runtime, message_id: str, direction: str) -> StatusRecord:
    record = await runtime.status.get(message_id)
    if record is None:
        raise Refusal(404, "no such message", field="id")
    if record.direction != direction:
        verb = "resend" if direction == "outbound" else "redeliver"
        raise Refusal(409, f"{message_id} is an {record.direction} message: "
                           f"{verb} is for {direction} ones", field="id")
    return record


@dataclass(frozen=True)
class Resent:
    """The send that carries a failed one again; `duplicate` when it was asked before."""

    id: str
    resend_of: str
    duplicate: bool


async def resend(runtime: Runtime, message_id: str) -> Resent:
    """Send a failed (or dead-lettered) outbound message again; the new send is queued."""
    record = await _record(runtime, message_id, "outbound")
    if record.state not in RESENDABLE:
        hint = (" (it may have reached the recipient: send a new message if it must go "
                "again)" if record.state == State.UNKNOWN else "")
        raise Refusal(409, f"{message_id} is {record.state.value}: only a failed send is "
                           f"resent{hint}", field="id")
    request = await stored_message(runtime, record)
    if not isinstance(request, OutboundRequest):
        raise Refusal(410, f"the text of {message_id} is no longer stored", field="id")
    # A failed resend is resent as the next of its original's resends: resent under its
    # own id instead, it and its original would each start a chain, and asked for both
    # the person would get the text twice.
    original = request.resend_of or message_id
    for n in range(1, MAX_RESENDS + 1):
        new_id = resend_id(original, n)
        earlier = await runtime.status.get(new_id)
        if earlier is not None and earlier.state in RESENDABLE:
            continue  # that resend failed too: this is the next one
        if earlier is not None:
            # Queued, sent or maybe sent: never published again (past the duplicate
            # window a publish would be new, and an `unknown` one may have arrived).
            return Resent(new_id, original, duplicate=True)
        again = request.model_copy(update={"id": new_id, "resend_of": original})
        # A resend published but not yet folded is the same request: deduplicated.
        queued = await queue_outbound(runtime, again)
        log.info("outbound %s resent as %s%s", original, new_id,
                 " (already resent)" if queued.duplicate else "", extra={"msg_id": new_id})
        return Resent(new_id, original, queued.duplicate)
    raise Refusal(409, f"{original} was resent {MAX_RESENDS} times already", field="id")


@dataclass(frozen=True)
class Redelivered:
    message: InboundMessage
    redelivery: int
    forgotten: int


async def redeliver(runtime: Runtime, message_id: str, force: bool = False) -> Redelivered:
    """Deliver an inbound message again to the channels of its number's settings now."""
    record = await _record(runtime, message_id, "inbound")
    message = await stored_message(runtime, record)
    if not isinstance(message, InboundMessage):
        raise Refusal(410, f"the text of {message_id} is no longer stored", field="id")
    decision = runtime.numbers.route_inbound(message.to, message.provider)
    if isinstance(decision, NoRoute):
        raise Refusal(409, f"still unroutable: {decision.reason}; give the number message "
                           "settings first (`pbxsms numbers set`)", field="id")
    message = message.model_copy(update={"route": decision})
    # As a new message would: the extension's reply leaves from the number texted.
    recording = await runtime.numbers.remember_conversation(decision, message.from_)
    if recording is not None:
        await recording
    n = record.redeliveries + 1
    forgotten = await Ledger(runtime).forget(message_id) if force else 0
    # First the channels start over, then the event: their states follow this one.
    await runtime.publish_status(StatusEvent(
        id=message_id, direction="inbound", state=State.QUEUED, redelivery=n, attempt=n,
        reason="redelivered by the operator" + (" (forced)" if force else ""),
        stream_seq=record.stream_seq, details={"forced": force}))
    # The same `Nats-Msg-Id` for the same redelivery: asked twice, stored once.
    await runtime.publish(inbound_subject(message), message,
                          f"redeliver:{message_id}:{n}")
    log.info("inbound %s redelivered (%d%s)", message_id, n, ", forced" if force else "",
             extra={"msg_id": message_id})
    return Redelivered(message, n, forgotten)
