"""Live pages: Server-Sent Events from the read model's KV streams.

A page is rendered with the stream sequence it saw last (`since`); its live channel then
follows the stream from the next sequence with an ordered JetStream consumer. Each event's
id is its stream sequence, so a browser that reconnects sends `Last-Event-ID` and gets
exactly what it missed. The buckets keep one revision per key, so a message that changed
twice while a page was away arrives once, as it is now; pages replace an element by id,
so nothing is shown twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time

from aiohttp import web
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from pbxsms.core.plugin_api import RouteRegister
from pbxsms.plugins.console.auth import SECURITY_HEADERS
from pbxsms.plugins.console.index import MESSAGES_BUCKET, THREADS_BUCKET, Entry, Thread
from pbxsms.plugins.console.render import fragment
from pbxsms.plugins.console.web import Console, Context, refused

log = logging.getLogger("pbxsms.console.live")

HEARTBEAT = 15.0


def register(console: Console, register: RouteRegister) -> None:
    runtime = console.runtime

    async def live(request: web.Request, ctx: Context) -> web.StreamResponse:
        conv = request.query.get("thread")
        if conv:
            thread = await console.index.thread(conv)
            if thread is None or not console.visible(ctx, thread.ours):
                raise web.HTTPNotFound()
            stream, subject = f"KV_{MESSAGES_BUCKET}", f"$KV.{MESSAGES_BUCKET}.m.{conv}.>"
        else:
            stream, subject = f"KV_{THREADS_BUCKET}", f"$KV.{THREADS_BUCKET}.t.>"
        since = _seq(request.headers.get("Last-Event-ID")) or _seq(request.query.get("since"))
        if console.live >= console.settings.max_live:
            return refused("Too many live pages are open: close some.", status=503)
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                                opt_start_seq=since + 1) if since is not None else \
            ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
        sub = await runtime.js.subscribe(subject, stream=stream, ordered_consumer=True,
                                         config=config)
        response = web.StreamResponse(headers={
            **SECURITY_HEADERS, "Content-Type": "text/event-stream",
            "X-Accel-Buffering": "no"})
        console.live += 1
        try:
            await response.prepare(request)
            await response.write(b"retry: 1000\n\n")
            await _follow(console, ctx, request, response, sub, bool(conv))
        except ConnectionResetError:  # the browser went away; it reconnects on its own
            pass
        finally:
            console.live -= 1
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        return response

    register("GET", "/console/live", console.guard(live))


async def _follow(console: Console, ctx: Context, request: web.Request,
                  response: web.StreamResponse, sub: JetStreamContext.PushSubscription,
                  thread_page: bool) -> None:
    stopping = console.runtime.stopping
    beat = time.monotonic()
    while not stopping.is_set() and ctx.session.expires > time.time():
        try:
            msg = await sub.next_msg(timeout=1.0)
        except NatsTimeout:
            if request.transport is None or request.transport.is_closing():
                return
            if time.monotonic() - beat >= HEARTBEAT:
                # A comment now and then keeps proxies from closing an idle stream.
                beat = time.monotonic()
                await response.write(b": keep-alive\n\n")
            continue
        headers = msg.headers or {}
        if headers.get("KV-Operation") in ("DEL", "PURGE") or not msg.data:
            continue
        seq = msg.metadata.sequence.stream
        if thread_page:
            entry = Entry.model_validate_json(msg.data)
            payload = {"id": entry.id, "n": entry.n,
                       "html": str(fragment("_bubble.html", entry=entry))}
            kind = "message"
        else:
            thread = Thread.model_validate_json(msg.data)
            if not console.visible(ctx, thread.ours):
                continue
            payload = {"conv": thread.conv, "unread": thread.unread,
                       "html": str(fragment("_thread_row.html", thread=thread,
                                            label=_label(console, thread)))}
            kind = "thread"
        data = json.dumps(payload)
        await response.write(f"id: {seq}\nevent: {kind}\ndata: {data}\n\n".encode())


def _label(console: Console, thread: Thread) -> str:
    record = console.runtime.numbers.get(thread.ours) if thread.ours else None
    parts = [thread.ours or "no number"]
    if record is not None and record.extension:
        parts.append(f"ext {record.extension}")
    return " · ".join(parts)


def _seq(text: str | None) -> int | None:
    try:
        value = int(text) if text else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 else None
