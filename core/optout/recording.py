"""Recording a customer's word (STOP or START) and announcing it on `sms.optout`."""

from __future__ import annotations

import logging

from pbxsms.core.health import metrics
from pbxsms.core.model.events import OptOutEvent
from pbxsms.core.serve.runtime import Runtime
from pbxsms.core.stores.optouts import OptOut

log = logging.getLogger("pbxsms.optout")

SUBJECT = "sms.optout"


async def record_word(runtime: Runtime, word: OptOut, message_id: str,
                      provider: str | None) -> None:
    """Store `word` (unless a later one is stored) and publish it on `sms.optout` under
    `message_id`, the message that said it; safe to repeat (deduplicated per message)."""
    current = await runtime.optouts.record(word)
    event = OptOutEvent(id=message_id, number=word.number, customer=word.customer,
                        opted_out=word.opted_out, source=word.source, keyword=word.keyword,
                        provider=provider, at=word.at)
    published = await runtime.publish(SUBJECT, event, f"optout:{message_id}")
    if published.duplicate:
        return
    kind = "stop" if word.opted_out else "start"
    metrics.OPTOUTS.labels(kind, word.source).inc()
    log.info("%s: a customer of %s opted %s (%s)%s", message_id, word.number,
             "out" if word.opted_out else "in", word.keyword or word.source,
             "" if current else "; a later word stands", extra={"msg_id": message_id})
