"""The Problems page: failed, unroutable and dead-lettered messages, each with its reason
and one button to send or deliver it again; and the health of the gateway.

Once only, as a new send: a resend is a new request whose id is derived from the failed
one, so pressing twice (or on two instances) stores it once; a re-delivery republishes
the original under one fixed deduplication key, and the delivery channels' ledger keeps
anyone already reached from being reached again.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from aiohttp import web

from pbxsms.core.plugin_api import (
    RESENDABLE,
    InboundMessage,
    NoRoute,
    PublishError,
    Refusal,
    RouteRegister,
    State,
    inbound_subject,
    next_resend_id,
)
from pbxsms.core.plugin_api import resend as resend_message
from pbxsms.plugins.console.index import Dead, Entry
from pbxsms.plugins.console.render import page
from pbxsms.plugins.console.web import Console, Context

log = logging.getLogger("pbxsms.console")

LIMIT = 100

NOTICES = {
    "resent": "Sent again: the new message is queued.",
    "already": "This message was already sent again.",
    "redelivered": "Delivered again: channels that had it already are skipped.",
    "still-unroutable": "Still no route: add or enable the number first.",
    "gone": "The original event is no longer stored (older than the bus keeps).",
    "refused": "Refused: ",
    "unavailable": "The message bus is unavailable: try again in a moment.",
}


def register(console: Console, register: RouteRegister) -> None:
    runtime = console.runtime

    def visible_entry(ctx: Context, entry: Entry | None) -> bool:
        if entry is None:
            return ctx.domain is None
        return console.visible(ctx, entry.ours)

    async def problems(request: web.Request, ctx: Context) -> web.StreamResponse:
        records = [*(await runtime.status.in_state(State.FAILED, LIMIT)).records,
                   *(await runtime.status.in_state(State.UNKNOWN, LIMIT)).records,
                   *(await runtime.status.in_state(State.UNROUTABLE, LIMIT)).records]
        entries = await console.index.entries([r.id for r in records])
        # A send was sent again once the resend that would carry it exists (a failed
        # resend's is the next of its original's): all looked up in one read.
        resend_ids = {message_id: next_resend_id(message_id, entry.resend_of)
                      for message_id, entry in entries.items() if entry.direction == "outbound"}
        resends = await console.index.entries(list(resend_ids.values()))
        rows: list[dict[str, Any]] = []
        for record in records:
            entry = entries.get(record.id)
            if not visible_entry(ctx, entry):
                continue
            reason = next((h.reason for h in reversed(record.history) if h.reason), "")
            resent = resend_ids.get(record.id) in resends
            rows.append({"record": record, "entry": entry, "reason": reason,
                         "resent": resent, "resendable": record.state in RESENDABLE})
        dead = []
        # A failed send is retried by "Send again" (a new message): re-delivering its
        # dead letter too could send it twice, so that letter is not offered.
        listed = {row["record"].id for row in rows}
        letters = [d for d in await console.index.dead_letters()
                   if not (d.subject == "sms.outbound" and d.id in listed)]
        dead_entries = await console.index.entries([d.id for d in letters if d.id])
        for letter in letters:
            entry = dead_entries.get(letter.id or "")
            if visible_entry(ctx, entry):
                dead.append({"dead": letter, "entry": entry})
        code = request.query.get("done", "")
        notice = NOTICES.get(code, "")
        if code == "refused":
            notice += request.query.get("why", "")[:200]
        urls = _webhook_urls(request, runtime.config.core.public_url)
        return page("problems.html", ctx=ctx, title="Problems", rows=rows, dead=dead,
                    notice=notice, urls=urls, public_url=runtime.config.core.public_url,
                    readiness=runtime.readiness(), degraded=runtime.plugins.degraded(runtime))

    async def resend(request: web.Request, ctx: Context) -> web.StreamResponse:
        data = await request.post()
        entry = await console.index.entry(str(data.get("id", "")))
        if entry is None or entry.direction != "outbound" or not visible_entry(ctx, entry):
            raise web.HTTPNotFound()
        # The API's and the CLI's resend: the stored request again (its media too), once,
        # and never a send that may have reached the person (`unknown`).
        try:
            resent = await resend_message(runtime, entry.id)
        except Refusal as error:
            return _done("unavailable" if error.status == 503 else "refused", error.message)
        log.info("console: %s sent %s again as %s", ctx.session.user.name, entry.id,
                 resent.id, extra={"msg_id": entry.id})
        return _done("already" if resent.duplicate else "resent")

    async def redeliver(request: web.Request, ctx: Context) -> web.StreamResponse:
        data = await request.post()
        if data.get("dead"):
            letter = await console.index.dead_letter(str(data["dead"]))
            if letter is None:
                raise web.HTTPNotFound()
            entry = await console.index.entry(letter.id) if letter.id else None
            if not visible_entry(ctx, entry):
                raise web.HTTPNotFound()
            if letter.subject == "sms.outbound" and letter.id:
                record = await runtime.status.get(letter.id)
                if record is not None and record.state in RESENDABLE:
                    return _done("refused", "a failed send is retried with Send again")
                if record is not None and record.state == State.UNKNOWN:
                    return _done("refused", "it may have reached the recipient: not sent "
                                            "again")
            return await _redeliver_dead(ctx, letter)
        entry = await console.index.entry(str(data.get("id", "")))
        if entry is None or entry.direction != "inbound" or not visible_entry(ctx, entry):
            raise web.HTTPNotFound()
        return await _redeliver_unroutable(ctx, entry)

    async def _original(seq: int) -> bytes | None:
        try:
            stored = await runtime.js.get_msg(runtime.stream, seq)
        except Exception as error:
            log.info("stored event %d not readable: %s", seq, error)
            return None
        return stored.data or None

    async def _redeliver_dead(ctx: Context, letter: Dead) -> web.StreamResponse:
        original = await _original(letter.stream_seq)
        if original is None:
            return _done("gone")
        try:
            await runtime.publish(letter.subject, original,
                                  f"redeliver:{letter.consumer}:{letter.stream_seq}")
            await console.index.mark_redelivered(letter.key, "threads")
        except PublishError:
            return _done("unavailable")
        log.info("console: %s re-delivered dead letter %s", ctx.session.user.name,
                 letter.key, extra={"msg_id": letter.id or "-"})
        return _done("redelivered")

    async def _redeliver_unroutable(ctx: Context, entry: Entry) -> web.StreamResponse:
        original = await _original(entry.stream_seq)
        if original is None:
            return _done("gone")
        message = InboundMessage.model_validate_json(original)
        decision = runtime.numbers.route_inbound(message.to, message.provider)
        if isinstance(decision, NoRoute):
            return _done("still-unroutable")
        if not console.visible(ctx, message.to):
            raise web.HTTPNotFound()
        message.route = decision
        try:
            recording = await runtime.numbers.remember_conversation(decision, message.from_)
            await runtime.publish(inbound_subject(message), message,
                                  f"redeliver:{message.id}")
            if recording is not None:
                await recording
            await console.index.mark_redelivered(f"m.{entry.conv}.{entry.n}", "messages")
        except PublishError:
            return _done("unavailable")
        log.info("console: %s re-delivered unroutable %s", ctx.session.user.name,
                 message.id, extra={"msg_id": message.id})
        return _done("redelivered")

    register("GET", "/console/problems", console.guard(problems))
    register("POST", "/console/problems/resend", console.guard(resend, form=True))
    register("POST", "/console/problems/redeliver", console.guard(redeliver, form=True))


def _done(code: str, why: str = "") -> web.StreamResponse:
    query = f"done={code}" + (f"&why={quote(why[:200])}" if why else "")
    raise web.HTTPSeeOther(f"/console/problems?{query}#top")


def _webhook_urls(request: web.Request, public_url: str | None) -> list[str]:
    """Every webhook route served here, on the public URL (or as reached now)."""
    base = (public_url or f"{request.scheme}://{request.host}").rstrip("/")
    paths = sorted({resource.canonical for resource in request.app.router.resources()
                    if resource.canonical.startswith("/webhook/")})
    return [base + path for path in paths]
