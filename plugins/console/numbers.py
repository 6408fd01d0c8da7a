"""The console's Numbers page (FS PBX "Message Settings"): list, add, edit, disable.

Every change goes through `runtime.numbers` (core/stores/numbers.py), which validates
exactly as `/api/v1/numbers` does and writes the shared bucket every instance watches.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from aiohttp import web
from nats.errors import Error as NatsError

from pbxsms.core.plugin_api import InvalidNumber, Refusal, RouteRegister
from pbxsms.plugins.console.render import page
from pbxsms.plugins.console.web import Console, Context

log = logging.getLogger("pbxsms.console")

# What writing the settings bucket may raise when the bus is away.
STORE_ERRORS = (NatsError, TimeoutError, ConnectionError)
FIELDS = ("number", "provider", "extension", "domain", "email", "description",
          "mobileapp_org")


def register(console: Console, register: RouteRegister) -> None:
    runtime = console.runtime

    def mine(ctx: Context, record: Any) -> bool:
        return record is not None and (ctx.domain is None or record.domain == ctx.domain)

    def form(ctx: Context, values: dict[str, Any], existing: Any,
             error: Refusal | None = None, status: int = 200) -> web.Response:
        return page("number_form.html", status=status, ctx=ctx,
                    title=f"Number {existing.number}" if existing else "Add a number",
                    values=values, existing=existing, providers=sorted(runtime.providers),
                    error=error)

    def found(text: str, ctx: Context) -> Any:
        try:
            number = runtime.numbers.normalise(text)
        except InvalidNumber:
            raise web.HTTPNotFound() from None
        record = runtime.numbers.get(number)
        if record is None or not mine(ctx, record):
            raise web.HTTPNotFound()
        return record

    async def list_numbers(request: web.Request, ctx: Context) -> web.StreamResponse:
        records = [r for r in runtime.numbers.all() if mine(ctx, r)]
        return page("numbers.html", ctx=ctx, title="Numbers", records=records,
                    saved=request.query.get("saved", ""))

    async def new_number(request: web.Request, ctx: Context) -> web.StreamResponse:
        providers = sorted(runtime.providers)
        return form(ctx, {"provider": providers[0] if providers else "",
                          "domain": ctx.domain or "", "enabled": True}, None)

    async def edit_number(request: web.Request, ctx: Context) -> web.StreamResponse:
        record = found(request.match_info["number"], ctx)
        return form(ctx, _values(record), record)

    async def save(request: web.Request, ctx: Context) -> web.StreamResponse:
        data = await request.post()
        values: dict[str, Any] = {name: str(data.get(name, "")).strip() for name in FIELDS}
        values["enabled"] = data.get("enabled") == "on"
        existing = None
        if data.get("existing"):
            existing = found(str(data["existing"]), ctx)
            values["number"] = existing.number  # the number itself is not edited here
        if ctx.domain is not None:
            values["domain"] = ctx.domain  # a tenant's user adds to their own tenant only
        try:
            record = runtime.numbers.validate({k: v for k, v in values.items()
                                               if v != "" or k == "number"})
            other = runtime.numbers.get(record.number)
            if existing is None and other is not None:
                raise Refusal(422, f"{record.number} already has message settings: "
                              "edit it instead", "number")
            await runtime.numbers.put(record)
        except Refusal as error:  # the API's own 422s, with the field they name
            return form(ctx, values, existing, error, error.status)
        except STORE_ERRORS as error:
            return form(ctx, values, existing, Refusal(
                503, f"message settings store unavailable: {error}", "number"), 503)
        log.info("console: %s saved the settings of %s", ctx.session.user.name, record.number)
        raise web.HTTPSeeOther(f"/console/numbers?saved={quote(record.number)}")

    async def toggle(request: web.Request, ctx: Context) -> web.StreamResponse:
        record = found(request.match_info["number"], ctx)
        changed = record.model_copy(update={"enabled": not record.enabled})
        try:
            await runtime.numbers.put(changed)
        except STORE_ERRORS as error:
            return form(ctx, _values(record), record, Refusal(
                503, f"message settings store unavailable: {error}", "enabled"), 503)
        log.info("console: %s %s %s", ctx.session.user.name,
                 "enabled" if changed.enabled else "disabled", record.number)
        raise web.HTTPSeeOther(f"/console/numbers?saved={quote(record.number)}")

    register("GET", "/console/numbers", console.guard(list_numbers))
    register("GET", "/console/numbers/new", console.guard(new_number))
    register("POST", "/console/numbers", console.guard(save, form=True))
    register("GET", "/console/numbers/{number}", console.guard(edit_number))
    register("POST", "/console/numbers/{number}/toggle", console.guard(toggle, form=True))


def _values(record: Any) -> dict[str, Any]:
    values: dict[str, Any] = record.model_dump()
    values["email"] = ", ".join(record.email)
    return {k: ("" if v is None else v) for k, v in values.items()}
