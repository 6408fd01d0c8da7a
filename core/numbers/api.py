"""`/api/v1/numbers`: message settings at run time.

Every route needs the API's Bearer token. Invalid values answer 422 naming the field;
a number in the path may be written in any common format (`%2B` for `+`). A failed
write to the bucket answers 503: nothing was changed, the caller may try again.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pbxsms.core.model.numbers import NumberError, NumberSettings
from pbxsms.core.model.phone import InvalidNumber
from pbxsms.core.refusal import Refusal
from pbxsms.core.registry import RouteHandler, RouteRegister
from pbxsms.core.serve.http import json_body, require_api_token
from pbxsms.core.serve.runtime import Runtime
from pbxsms.core.stores.numbers import STORE_ERRORS


def _shown(record: NumberSettings) -> dict[str, Any]:
    return record.model_dump(mode="json")


def register_routes(runtime: Runtime, register: RouteRegister) -> None:
    def guarded(handler: RouteHandler) -> RouteHandler:
        async def run(request: web.Request) -> web.StreamResponse:
            require_api_token(request, runtime.config.core.api_token)
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

    async def list_numbers(request: web.Request) -> web.StreamResponse:
        extension = request.query.get("extension")
        domain = request.query.get("domain")
        records = [r for r in runtime.numbers.all()
                   if (extension is None or r.extension == extension)
                   and (domain is None or r.domain == domain.lower())]
        return web.json_response({"numbers": [_shown(r) for r in records]})

    async def put_many(request: web.Request) -> web.StreamResponse:
        body = await json_body(request)
        rows = body.get("numbers") if isinstance(body, dict) else None
        if not isinstance(rows, list):
            raise NumberError("numbers", 'expected {"numbers": [ {...}, ... ]}')
        records = runtime.numbers.validate_many(rows)  # all valid, or nothing is written
        dry_run = request.query.get("dry_run", "").lower() in ("1", "true", "yes")
        written = 0 if dry_run else await runtime.numbers.upsert(records)
        return web.json_response({"numbers": [_shown(r) for r in records],
                                  "written": written})

    async def get_number(request: web.Request) -> web.StreamResponse:
        record = runtime.numbers.get(path_number(request))
        if record is None:
            raise Refusal(404, "no message settings for this number", field="number")
        return web.json_response(_shown(record))

    async def put_number(request: web.Request) -> web.StreamResponse:
        number = path_number(request)
        body = await json_body(request)
        if not isinstance(body, dict):
            raise NumberError("record", "expected a JSON object of message settings")
        # As written, so that a misread national number is explained in its own digits.
        given = body.get("number", request.match_info["number"])
        record = runtime.numbers.validate({**body, "number": given})
        if record.number != number:
            raise NumberError("number", f"{record.number} differs from the path's {number}")
        created = await runtime.numbers.put(record)
        return web.json_response(_shown(record), status=201 if created else 200)

    async def delete_number(request: web.Request) -> web.StreamResponse:
        if not await runtime.numbers.delete(path_number(request)):
            raise Refusal(404, "no message settings for this number", field="number")
        return web.Response(status=204)

    register("GET", "/api/v1/numbers", guarded(list_numbers))
    register("PUT", "/api/v1/numbers", guarded(put_many))
    register("GET", "/api/v1/numbers/{number}", guarded(get_number))
    register("PUT", "/api/v1/numbers/{number}", guarded(put_number))
    register("DELETE", "/api/v1/numbers/{number}", guarded(delete_number))
