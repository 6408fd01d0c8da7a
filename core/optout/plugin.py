"""The `optout` consumer, shipped as an ordinary plugin: STOP, START and HELP texts.

A text that is exactly a keyword (core/optout/keywords.py) is stored on a subject of its
own (`sms.inbound.<provider>.keyword`, core/inbound/subjects.py), which is all this
consumer reads. To one of our numbers, it is recorded per (our number, customer) and
announced on `sms.optout`; the optional answer of `[optout] reply_<keyword>` goes back
from that number. The text itself is still delivered
like any other: the extension sees that the customer said STOP.
"""

from __future__ import annotations

import logging
import uuid

from pbxsms.bus.consumer import Delivery, Permanent, Retry
from pbxsms.core.hookspecs import hookimpl
from pbxsms.core.inbound.subjects import KEYWORD_SUBJECTS
from pbxsms.core.model.events import InboundMessage, OutboundRequest
from pbxsms.core.optout.keywords import Keyword, keyword_of
from pbxsms.core.optout.recording import record_word
from pbxsms.core.outbound.api import queue_outbound
from pbxsms.core.refusal import Refusal
from pbxsms.core.registry import ConsumerRegister, ConsumerSpec
from pbxsms.core.serve.runtime import Runtime
from pbxsms.core.stores.optouts import OptOut

log = logging.getLogger("pbxsms.optout")

CONSUMER = "optout"
# Fixed forever: an automatic reply's id is derived from the keyword text's id under it,
# so a redelivery queues the same reply (deduplicated) instead of a second one.
REPLY_NAMESPACE = uuid.UUID("2b7e4c1a-9f3d-5a60-8c2e-4d1f0a9b7e35")


def reply_id(message_id: str) -> str:
    return str(uuid.uuid5(REPLY_NAMESPACE, message_id))


class KeywordHandler:
    """Consumer handler for `KEYWORD_SUBJECTS`: the texts that are a keyword (and, while
    an upgrade's backlog is read, every text: the others it ignores)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def handle(self, delivery: Delivery) -> None:
        try:
            message = InboundMessage.model_validate_json(delivery.data)
        except ValueError as error:
            raise Permanent(f"not an inbound message: {error}") from error
        keyword = keyword_of(message.body)
        if keyword is None or message.route is None:
            return  # ordinary text, or not to a number of ours
        reply = self._reply_text(keyword) if message.sender_type == "e164" else None
        if keyword != "help":
            word = OptOut(number=message.to, customer=message.from_,
                          opted_out=keyword == "stop", source="keyword",
                          keyword=message.body.strip().upper(), at=message.received_at,
                          confirmation_id=reply_id(message.id) if reply else None)
            await record_word(self.runtime, word, message.id, message.provider)
        if reply is not None:
            await self._reply(message, reply)

    def _reply_text(self, keyword: Keyword) -> str | None:
        replies = self.runtime.config.file.optout
        return {"stop": replies.reply_stop, "start": replies.reply_start,
                "help": replies.reply_help}[keyword]

    async def _reply(self, message: InboundMessage, text: str) -> None:
        request = OutboundRequest(id=reply_id(message.id), to=message.from_, body=text,
                                  source="optout", in_reply_to=message.id,
                                  **{"from": message.to})
        try:
            await queue_outbound(self.runtime, request)
        except Refusal as refusal:
            if refusal.status == 503:
                raise Retry(f"automatic reply not queued: {refusal.message}") from None
            # Not sendable (e.g. the number has no provider now): said, not retried.
            log.warning("%s: automatic reply not sent: %s", message.id, refusal.message,
                        extra={"msg_id": message.id})


@hookimpl
def register_consumers(runtime: Runtime, register: ConsumerRegister) -> None:
    register(ConsumerSpec(CONSUMER, KEYWORD_SUBJECTS, KeywordHandler(runtime).handle))
