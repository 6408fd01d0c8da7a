"""The console's pages: sign-in, conversations, a thread and its reply box."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from aiohttp import web

from pbxsms.core.plugin_api import OutboundRequest, Refusal, RouteRegister, queue_outbound
from pbxsms.plugins.console import auth
from pbxsms.plugins.console.index import Entry, Thread, number_token
from pbxsms.plugins.console.render import page
from pbxsms.plugins.console.web import Console, Context, refused

log = logging.getLogger("pbxsms.console")

_SAFE_NEXT = re.compile(r"^/console/[A-Za-z0-9/_.?=&%+-]*$")


def register(console: Console, register: RouteRegister) -> None:
    runtime = console.runtime

    def limiter() -> auth.LoginLimiter:
        assert console.limiter is not None
        return console.limiter

    def login_page(error: str = "", status: int = 200, name: str = "",
                   next_url: str = "/console/") -> web.Response:
        return page("login.html", status=status, error=error, name=name, next_url=next_url,
                    title="Sign in", ctx=None,
                    disabled=console.settings.key is None)

    async def login_form(request: web.Request) -> web.StreamResponse:
        if await console.session(request) is not None:
            raise web.HTTPSeeOther("/console/")
        return login_page(next_url=_next(request.query.get("next")))

    async def login(request: web.Request) -> web.StreamResponse:
        if not auth.same_origin(request, runtime.config.core.public_url):
            return refused("This form was not sent from the console's own pages.")
        data = await request.post()
        name = str(data.get("name", "")).strip().lower()[:64]
        password = str(data.get("password", ""))[:1024]
        next_url = _next(str(data.get("next", "")))
        key = console.settings.key
        if key is None:
            return login_page("The console is not set up: PBXSMS_CONSOLE_SECRET is unset.",
                              503, name)
        keys = (f"addr:{request.remote}", f"name:{name}")
        wait = limiter().blocked_for(*keys)
        if wait > 0:
            return login_page(f"Too many failed sign-ins: try again in {int(wait) + 1} s.",
                              429, name, next_url)
        user = await console.users.authenticate(name, password)
        if user is None:
            limiter().failed(*keys)
            log.warning("console sign-in refused for %r from %s", name, request.remote)
            return login_page("Wrong user name or password.", 401, name, next_url)
        limiter().succeeded(keys[1])
        log.info("console sign-in: %s", user.name)
        response = web.HTTPSeeOther(next_url)
        ttl = console.settings.session_ttl
        auth.set_cookie(response, request, auth.issue(key, user, ttl), ttl,
                        runtime.config.core.public_url)
        raise response

    async def logout(request: web.Request, ctx: Context) -> web.StreamResponse:
        response = web.HTTPSeeOther("/console/login")
        auth.clear_cookie(response)
        raise response

    async def conversations(request: web.Request, ctx: Context) -> web.StreamResponse:
        since = await _last_seq(runtime, "KV_console_threads")
        threads = [t for t in await console.index.all_threads()
                   if console.visible(ctx, t.ours)]
        numbers = sorted({t.ours for t in threads if t.ours})
        chosen = request.query.get("number", "")
        query = request.query.get("q", "").strip()[:100]
        if chosen:
            threads = [t for t in threads if t.ours == chosen]
        found: list[Entry] = []
        if query:
            digits = re.sub(r"[\s().-]", "", query)
            if re.fullmatch(r"\+?\d{2,20}", digits):
                token = digits.lstrip("+")
                threads = [t for t in threads
                           if token in number_token(t.customer) or token in
                           number_token(t.ours)]
            else:
                allowed = {t.conv for t in threads}
                found = await console.index.search(query, allowed)
                threads = []
        return page("conversations.html", ctx=ctx, title="Conversations", threads=threads,
                    numbers=[(n, console.runtime.numbers.get(n)) for n in numbers],
                    chosen=chosen, query=query, found=found, since=since,
                    labels=_labels(console, threads))

    async def thread_page(request: web.Request, ctx: Context, error: str = "",
                          draft: str = "", status: int = 200) -> web.StreamResponse:
        thread = await _visible_thread(console, ctx, request.match_info["conv"])
        since = await _last_seq(runtime, "KV_console_messages")
        before = _int(request.query.get("before"))
        entries = await console.index.page(thread, before)
        if thread.unread and not error:
            await console.index.mark_read(thread.conv)
        record = runtime.numbers.get(thread.ours) if thread.ours else None
        return page("thread.html", status=status, ctx=ctx, title=thread.customer,
                    thread=thread, entries=entries, since=since, record=record,
                    error=error, draft=draft, reply_id=str(uuid.uuid4()),
                    max_segments=runtime.config.file.outbound.max_segments,
                    older=entries[0].n if entries and entries[0].n > 1 else None)

    async def thread_view(request: web.Request, ctx: Context) -> web.StreamResponse:
        return await thread_page(request, ctx)

    async def reply(request: web.Request, ctx: Context) -> web.StreamResponse:
        thread = await _visible_thread(console, ctx, request.match_info["conv"])
        data = await request.post()
        body = str(data.get("body", ""))
        given = str(data.get("id", ""))
        try:
            message_id = str(uuid.UUID(given))
        except ValueError:
            message_id = str(uuid.uuid4())
        outbound = OutboundRequest.model_validate({
            "id": message_id, "from": thread.ours, "to": thread.customer, "body": body,
            "source": "console", "in_reply_to": thread.last_id or None})
        try:
            await queue_outbound(runtime, outbound)
        except Refusal as problem:  # the send API's own refusals, in its words
            return await thread_page(request, ctx, problem.message, body, problem.status)
        log.info("console: %s replied in a conversation", ctx.session.user.name,
                 extra={"msg_id": message_id})
        raise web.HTTPSeeOther(f"/console/t/{thread.conv}#compose")

    register("GET", "/console/login", login_form)
    register("POST", "/console/login", login)
    register("POST", "/console/logout", console.guard(logout, form=True))
    register("GET", "/console/", console.guard(conversations))
    register("GET", "/console/t/{conv}", console.guard(thread_view))
    register("POST", "/console/t/{conv}/reply", console.guard(reply, form=True))


async def _visible_thread(console: Console, ctx: Context, conv: str) -> Thread:
    """The conversation, or 404 when it does not exist or is another tenant's (the same
    answer, so that a URL tells nothing about another tenant)."""
    thread = await console.index.thread(conv)
    if thread is None or not console.visible(ctx, thread.ours):
        raise web.HTTPNotFound()
    return thread


async def _last_seq(runtime: Any, stream: str) -> int:
    """Where a live page starts following: everything after this is sent to it."""
    info = await runtime.js.stream_info(stream)
    return int(info.state.last_seq)


def _labels(console: Console, threads: list[Thread]) -> dict[str, str]:
    labels = {}
    for thread in threads:
        record = console.runtime.numbers.get(thread.ours) if thread.ours else None
        parts = [thread.ours or "no number"]
        if record is not None and record.extension:
            parts.append(f"ext {record.extension}")
        labels[thread.conv] = " · ".join(parts)
    return labels


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


def _next(text: str | None) -> str:
    """Only a console path: a login link must not send anyone elsewhere."""
    return text if text and _SAFE_NEXT.match(text) and "//" not in text else "/console/"
