"""`/api/v1/messages/...` for the operator: read a message (its text included), list by
state or the dead letters, resend a failed send, redeliver an inbound message.

Every route needs the API's Bearer token: the operator's own API shows what a message
said (logs never do).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pbxsms.bus.publish import PublishError
from pbxsms.core.messages.lookup import dead_letters, stored_message
from pbxsms.core.messages.replay import redeliver, resend
from pbxsms.core.model.events import InboundMessage, State
from pbxsms.core.refusal import Refusal
from pbxsms.core.registry import RouteHandler, RouteRegister
from pbxsms.core.serve.http import require_api_token
from pbxsms.core.serve.runtime import Runtime
from pbxsms.core.stores.status import StatusRecord

DEAD = "dead"


async def shown(runtime: Runtime, record: StatusRecord) -> dict[str, Any]:
    """A status record with the message itself (`message`: from, to, body, ...)."""
    message = await stored_message(runtime, record)
    answer = record.model_dump(mode="json")
    answer["message"] = (message.model_dump(mode="json", by_alias=True, exclude_none=True)
                         if message is not None else None)
    if isinstance(message, InboundMessage):
        # The carrier's id, as in the event (channels' ids are in the history).
        answer["provider_message_id"] = message.provider_message_id
    return answer


def register_routes(runtime: Runtime, register: RouteRegister) -> None:
    def guarded(handler: RouteHandler) -> RouteHandler:
        async def run(request: web.Request) -> web.StreamResponse:
            require_api_token(request, runtime.config.core.api_token)
            try:
                return await handler(request)
            except PublishError as error:
                raise Refusal(503, f"the message bus is unavailable; try again ({error})"
                              ) from None
        return run

    async def get_message(request: web.Request) -> web.StreamResponse:
        record = await runtime.status.get(request.match_info["id"])
        if record is None:
            raise Refusal(404, "no such message", field="id")
        return web.json_response(await shown(runtime, record))

    async def list_messages(request: web.Request) -> web.StreamResponse:
        wanted = request.query.get("status", "")
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            raise Refusal(422, "expected a whole number from 1 to 1000", field="limit")
        if wanted == DEAD:
            letters = [letter.model_dump(mode="json", by_alias=True)
                       async for letter in dead_letters(runtime)]
            return web.json_response({"dead": letters[::-1][:limit]})
        try:
            state = State(wanted)
        except ValueError:
            choices = ", ".join([*(s.value for s in State), DEAD])
            raise Refusal(422, f"expected one of: {choices}", field="status") from None
        records = await runtime.status.in_state(state, limit)
        return web.json_response({"messages": [r.model_dump(mode="json") for r in records]})

    async def resend_message(request: web.Request) -> web.StreamResponse:
        resent = await resend(runtime, request.match_info["id"])
        return web.json_response(
            {"id": resent.id, "resend_of": resent.resend_of, "duplicate": resent.duplicate},
            status=202, headers={"Location": f"/api/v1/messages/{resent.id}"})

    async def redeliver_message(request: web.Request) -> web.StreamResponse:
        force = request.query.get("force", "").lower() in ("1", "true", "yes")
        done = await redeliver(runtime, request.match_info["id"], force)
        route = done.message.route
        return web.json_response(
            {"id": done.message.id, "redelivery": done.redelivery, "forced": force,
             "forgotten": done.forgotten,
             "route": route.model_dump(mode="json") if route else None}, status=202)

    register("GET", "/api/v1/messages", guarded(list_messages))
    register("GET", "/api/v1/messages/{id}", guarded(get_message))
    register("POST", "/api/v1/messages/{id}/resend", guarded(resend_message))
    register("POST", "/api/v1/messages/{id}/redeliver", guarded(redeliver_message))
