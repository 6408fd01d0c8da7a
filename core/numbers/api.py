"""`/api/v1/numbers`: message settings at run time.

Every route needs a Bearer token: the operator's sees every number and message, a
tenant's (PBXSMS_TENANT_TOKENS) only those of its domain. Invalid values answer 422
naming the field; a number in the path may be written in any common format (`%2B` for
`+`). A failed write to the bucket answers 503: nothing was changed, the caller may try
again.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pbxsms.core.model.numbers import NumberError, NumberSettings
from pbxsms.core.model.phone import InvalidNumber
from pbxsms.core.refusal import Refusal
from pbxsms.core.registry import RouteHandler, RouteRegister
from pbxsms.core.serve.http import Caller, api_caller, json_body
from pbxsms.core.serve.runtime import Runtime
from pbxsms.core.stores.numbers import STORE_ERRORS


def _shown(record: NumberSettings) -> dict[str, Any]:
    return record.model_dump(mode="json")


CALLER = web.RequestKey("caller", Caller)


def _caller(request: web.Request) -> Caller:
    return request[CALLER]


def register_routes(runtime: Runtime, register: RouteRegister) -> None:
    def guarded(handler: RouteHandler) -> RouteHandler:
        async def run(request: web.Request) -> web.StreamResponse:
            request[CALLER] = api_caller(request, runtime.config.core)
            try:
                return await handler(request)
            except STORE_ERRORS as error:
                raise Refusal(503, f"message settings store unavailable: {error}") from None
        return run

    def path_number(request: web.Request) -> str:
        try:
            return runtime.numbers.normalise(request.match_info["number"])
        except InvalidNumber as error:
            raise NumberError("number", str(error)) from None

    def seen(request: web.Request, number: str) -> NumberSettings | None:
        """The number's settings when this caller may see them (a tenant: its own)."""
        record = runtime.numbers.get(number)
        return record if record is not None and _caller(request).sees(record.domain) else None

    async def list_numbers(request: web.Request) -> web.StreamResponse:
        extension = request.query.get("extension")
        domain = request.query.get("domain")
        caller = _caller(request)
        records = [r for r in runtime.numbers.all()
                   if (extension is None or r.extension == extension)
                   and (domain is None or r.domain == domain.lower())
                   and caller.sees(r.domain)]
        return web.json_response({"numbers": [_shown(r) for r in records]})

    def editable(request: web.Request, number: str) -> None:
        """Refusal 409 when the TOML file owns `number`: the file is where it changes;
        403 when it is another tenant's."""
        stored = runtime.numbers.get(number)
        if stored is not None and not _caller(request).sees(stored.domain):
            raise Refusal(403, f"{number} is not a number of tenant {_caller(request).domain}",
                          field="number")
        if stored is not None and stored.managed_by_file:
            raise Refusal(409, f"{number} is managed by {stored.managed_by_file} "
                               "([[numbers]]): change or remove its row there, then run "
                               "`pbxsms reload`", field="number")

    def given(request: web.Request, records: list[NumberSettings],
              where: str = "") -> list[NumberSettings]:
        """`records` as this caller may write them: a tenant's get its domain."""
        tenant = _caller(request).domain
        mine = []
        for record in records:
            if record.managed_by_file is not None:
                raise NumberError(f"{where}managed_by_file",
                                  "set by the gateway for the rows of its TOML file")
            if tenant is not None and record.domain not in (None, tenant):
                raise Refusal(403, f"a tenant's token writes numbers of tenant {tenant} "
                                   "only", field=f"{where}domain")
            editable(request, record.number)
            mine.append(record if tenant is None
                        else record.model_copy(update={"domain": tenant}))
        return mine

    async def put_many(request: web.Request) -> web.StreamResponse:
        body = await json_body(request)
        rows = body.get("numbers") if isinstance(body, dict) else None
        if not isinstance(rows, list):
            raise NumberError("numbers", 'expected {"numbers": [ {...}, ... ]}')
        # All valid and editable, or nothing is written.
        records = given(request, runtime.numbers.validate_many(rows), "numbers.")
        dry_run = request.query.get("dry_run", "").lower() in ("1", "true", "yes")
        written = 0 if dry_run else await runtime.numbers.upsert(records)
        return web.json_response({"numbers": [_shown(r) for r in records],
                                  "written": written})

    async def get_number(request: web.Request) -> web.StreamResponse:
        record = seen(request, path_number(request))
        if record is None:
            raise Refusal(404, "no message settings for this number", field="number")
        return web.json_response(_shown(record))

    async def put_number(request: web.Request) -> web.StreamResponse:
        number = path_number(request)
        body = await json_body(request)
        if not isinstance(body, dict):
            raise NumberError("record", "expected a JSON object of message settings")
        # As written, so that a misread national number is explained in its own digits.
        written = body.get("number", request.match_info["number"])
        record = runtime.numbers.validate({**body, "number": written})
        if record.number != number:
            raise NumberError("number", f"{record.number} differs from the path's {number}")
        (record,) = given(request, [record])
        created = await runtime.numbers.put(record)
        return web.json_response(_shown(record), status=201 if created else 200)

    async def delete_number(request: web.Request) -> web.StreamResponse:
        number = path_number(request)
        if seen(request, number) is None:
            raise Refusal(404, "no message settings for this number", field="number")
        editable(request, number)
        if not await runtime.numbers.delete(number):
            raise Refusal(404, "no message settings for this number", field="number")
        return web.Response(status=204)


    register("GET", "/api/v1/numbers", guarded(list_numbers))
    register("PUT", "/api/v1/numbers", guarded(put_many))
    register("GET", "/api/v1/numbers/{number}", guarded(get_number))
    register("PUT", "/api/v1/numbers/{number}", guarded(put_number))
    register("DELETE", "/api/v1/numbers/{number}", guarded(delete_number))
