"""`/api/v1/messages/...` for the operator: read a message (its text included), list by
state or the dead letters, resend a failed send, redeliver an inbound message.

Every route needs a Bearer token: the operator's sees every message, a tenant's
(PBXSMS_TENANT_TOKENS) only those of its domain, and the dead letters not at all. The API
shows what a message said (logs never do).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from pbxsms.core.messages.lookup import dead_letters, stored_message
from pbxsms.core.messages.replay import redeliver, resend
from pbxsms.core.model.events import InboundMessage, State
from pbxsms.core.refusal import Refusal
from pbxsms.core.registry import RouteHandler, RouteRegister
from pbxsms.core.serve.http import Caller, api_caller
from pbxsms.core.serve.runtime import Runtime
from pbxsms.core.stores.status import StatusRecord

DEAD = "dead"
CALLER = web.RequestKey("caller", Caller)


def _whole(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.query.get(name, str(default)))
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise Refusal(422, f"expected a whole number from {low} to {high}", field=name)
    return value


async def shown(runtime: Runtime, record: StatusRecord) -> dict[str, Any]:
    """A status record with the message itself (`message`: from, to, body, ...)."""
    message = await stored_message(runtime, record)
    answer = record.public()
    answer["message"] = (message.model_dump(mode="json", by_alias=True, exclude_none=True)
                         if message is not None else None)
    if isinstance(message, InboundMessage):
        # The carrier's id, as in the event (channels' ids are in the history).
        answer["provider_message_id"] = message.provider_message_id
    return answer


def register_routes(runtime: Runtime, register: RouteRegister) -> None:
    def guarded(handler: RouteHandler) -> RouteHandler:
        async def run(request: web.Request) -> web.StreamResponse:
            request[CALLER] = api_caller(request, runtime.config.core)
            # A bus failure is the error middleware's 503 (with Retry-After, logged).
            return await handler(request)
        return run

    async def seen(request: web.Request) -> StatusRecord:
        record = await runtime.status.get(request.match_info["id"])
        if record is None or not request[CALLER].sees(record.domain):
            raise Refusal(404, "no such message", field="id")
        return record

    async def get_message(request: web.Request) -> web.StreamResponse:
        return web.json_response(await shown(runtime, await seen(request)))

    async def list_messages(request: web.Request) -> web.StreamResponse:
        wanted = request.query.get("status", "")
        limit = _whole(request, "limit", 100, 1, 1000)
        if wanted == DEAD:
            if request[CALLER].domain is not None:
                raise Refusal(403, "the dead letters need the operator's token",
                              field="status")
            letters = [letter.model_dump(mode="json", by_alias=True)
                       async for letter in dead_letters(runtime)]
            return web.json_response({"dead": letters[::-1][:limit]})
        try:
            state = State(wanted)
        except ValueError:
            choices = ", ".join([*(s.value for s in State), DEAD])
            raise Refusal(422, f"expected one of: {choices}", field="status") from None
        after = _whole(request, "after", 0, 0, 2**63)
        since = None
        if "since" in request.query:
            try:
                since = datetime.fromisoformat(request.query["since"])
            except ValueError:
                raise Refusal(422, "expected an ISO 8601 time", field="since") from None
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
        page = await runtime.status.in_state(state, limit, after, since)
        # A tenant's page holds its own messages only: fewer, the same `next_after`.
        mine = [r for r in page.records if request[CALLER].sees(r.domain)]
        return web.json_response({"messages": [r.public() for r in mine],
                                  "next_after": page.next_after})

    async def resend_message(request: web.Request) -> web.StreamResponse:
        resent = await resend(runtime, (await seen(request)).id)
        return web.json_response(
            {"id": resent.id, "resend_of": resent.resend_of, "duplicate": resent.duplicate},
            status=202, headers={"Location": f"/api/v1/messages/{resent.id}"})

    async def redeliver_message(request: web.Request) -> web.StreamResponse:
        force = request.query.get("force", "").lower() in ("1", "true", "yes")
        done = await redeliver(runtime, (await seen(request)).id, force)
        route = done.message.route
        return web.json_response(
            {"id": done.message.id, "redelivery": done.redelivery, "forced": force,
             "forgotten": done.forgotten,
             "route": route.model_dump(mode="json") if route else None}, status=202)

    register("GET", "/api/v1/messages", guarded(list_messages))
    register("GET", "/api/v1/messages/{id}", guarded(get_message))
    register("POST", "/api/v1/messages/{id}/resend", guarded(resend_message))
    register("POST", "/api/v1/messages/{id}/redeliver", guarded(redeliver_message))
