"""What every console handler shares: the signed-in session, the checks of a form, the
health strip and the tenant rule."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from pbxsms.core.plugin_api import Runtime
from pbxsms.plugins.console import auth
from pbxsms.plugins.console.index import Index
from pbxsms.plugins.console.render import page
from pbxsms.plugins.console.settings import ConsoleSettings
from pbxsms.plugins.console.users import Users

Handler = Callable[[web.Request, "Context"], Awaitable[web.StreamResponse]]


@dataclass
class Context:
    """One request of a signed-in user."""

    session: auth.Session
    health: dict[str, Any]

    @property
    def domain(self) -> str | None:
        return self.session.domain


class Console:
    """The console's state in one process: its stores, its limits, its settings."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._index: Index | None = None
        self._users: Users | None = None
        self.limiter: auth.LoginLimiter | None = None
        self.live = 0  # live pages open now
        self._webhooks: tuple[float, dict[str, datetime | None]] = (float("-inf"), {})

    @property
    def settings(self) -> ConsoleSettings:
        return self.runtime.config.plugin("console", ConsoleSettings)

    @property
    def index(self) -> Index:
        if self._index is None:
            raise RuntimeError("the console has not started")
        return self._index

    @property
    def users(self) -> Users:
        if self._users is None:
            raise RuntimeError("the console has not started")
        return self._users

    @property
    def ready(self) -> bool:
        return self._index is not None

    def started(self, index: Index, users: Users) -> None:
        self._index, self._users = index, users
        settings = self.settings
        self.limiter = auth.LoginLimiter(settings.login_attempts, settings.login_window)

    # -- the tenant rule ------------------------------------------------------------

    def domain_of(self, number: str) -> str | None:
        record = self.runtime.numbers.get(number) if number else None
        return record.domain if record is not None else None

    def visible(self, ctx: Context, ours: str) -> bool:
        """A user limited to a tenant sees the conversations of that tenant's numbers."""
        return ctx.domain is None or (bool(ours) and self.domain_of(ours) == ctx.domain)

    # -- sessions -------------------------------------------------------------------

    async def session(self, request: web.Request) -> auth.Session | None:
        key = self.settings.key
        cookie = request.cookies.get(auth.COOKIE)
        if key is None or not cookie:
            return None
        claims = auth.verify(key, cookie)
        if claims is None:
            return None
        return auth.session_for(key, claims, await self.users.get(claims.name))

    def guard(self, handler: Handler, form: bool = False) -> Callable[
            [web.Request], Awaitable[web.StreamResponse]]:
        """Signed in, or off to the login page; a form must come from our own pages and
        carry the session's CSRF token."""

        async def run(request: web.Request) -> web.StreamResponse:
            if form and not auth.same_origin(request, self.runtime.config.core.public_url):
                return refused("This form was not sent from the console's own pages.")
            session = await self.session(request)
            if session is None:
                if form or request.path.startswith("/console/live"):
                    return refused("Your session has ended: sign in again.", status=401)
                target = request.path_qs if request.method == "GET" else "/console/"
                raise web.HTTPSeeOther(f"/console/login?next={quote(target, safe='')}")
            if form:
                data = await request.post()
                token = str(data.get("csrf", ""))
                if not auth.hmac_equal(token, session.csrf):
                    return refused("This form is out of date: reload the page and try again.")
            ctx = Context(session, await self.health(request))
            try:
                return await handler(request, ctx)
            except web.HTTPNotFound:
                return page("error.html", status=404, title="Not found", ctx=ctx,
                            message="There is nothing here, or it is not yours to see.")

        return run

    # -- the health strip -----------------------------------------------------------

    async def health(self, request: web.Request) -> dict[str, Any]:
        runtime = self.runtime
        reasons = runtime.readiness() + runtime.plugins.degraded(runtime)
        providers = sorted(runtime.providers)
        bus = runtime.bus_connected
        # "Last webhook 3 min ago" needs no fresher read than once a second.
        checked, webhooks = self._webhooks
        if bus and providers and time.monotonic() - checked >= 1.0:
            webhooks = await self.index.last_webhooks(providers)
            self._webhooks = (time.monotonic(), webhooks)
        return {"bus": bus, "reasons": reasons, "webhooks": webhooks}


def refused(message: str, status: int = 403) -> web.Response:
    return page("error.html", status=status, message=message, title="Refused", ctx=None)
