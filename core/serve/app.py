"""The aiohttp application: routes come from plugins, errors are always JSON."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import StreamReader, web
from nats.errors import Error as NatsError

from pbxsms.bus.publish import BusError
from pbxsms.core.health import metrics
from pbxsms.core.refusal import Refusal
from pbxsms.core.registry import RouteHandler
from pbxsms.core.serve.http import json_error
from pbxsms.core.serve.runtime import Runtime

log = logging.getLogger("pbxsms.http")

MAX_BODY = 64 * 1024
RUNTIME_KEY = web.AppKey("runtime", Runtime)


@web.middleware
async def errors_as_json(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error a client sees is JSON; an unexpected exception is logged, never leaked."""
    route = request.match_info.route.resource
    label = route.canonical if route is not None else "unmatched"
    started = time.perf_counter()
    try:
        return await handler(request)
    except Exception as error:
        try:
            answer = _answer(request, label, error)
        finally:
            if not _redirect(error):
                _forget_frames(error)
        if answer is None:
            raise
        return answer
    finally:
        metrics.labelled(metrics.HTTP_LATENCY, label).observe(time.perf_counter() - started)


def _answer(request: web.Request, label: str, error: Exception) -> web.Response | None:
    """The JSON answer to `error`; None for a redirect, which aiohttp answers."""
    if isinstance(error, Refusal):
        return json_error(error.status, error.message, error.field, error.headers)
    if isinstance(error, web.HTTPRequestEntityTooLarge):
        return json_error(413, f"request body larger than {MAX_BODY} bytes")
    if isinstance(error, web.HTTPException):
        if _redirect(error):
            return None
        message = {404: "not found", 405: "method not allowed"}.get(error.status, error.reason)
        return json_error(error.status, message, headers=_allow(error))
    if isinstance(error, (BusError, NatsError)):
        # NATS is down or not answering: the caller should come back, not see a 500.
        log.warning("%s %s: the message bus is unavailable: %s", request.method, label, error)
        return json_error(503, "the message bus is unavailable; try again",
                          headers={"Retry-After": "5"})
    log.error("unhandled error on %s %s", request.method, label, exc_info=error)
    return json_error(500, "internal error; see the gateway's log")


def _redirect(error: Exception) -> bool:
    return isinstance(error, web.HTTPException) and error.status < 400


def _forget_frames(error: BaseException) -> None:
    """Drop the tracebacks of an answered error and of the errors it was raised from.

    A traceback holds its frames and they hold the request: an exception that a frame
    also refers to (aiohttp's 404/405 handler keeps the exception it raises; `raise ...
    from error` inside `except` leaves `error` in the frame) is a reference cycle that
    only the garbage collector frees, and with the large youngest generation set in
    `Server.start` thousands of refused requests would pile up in memory first."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        pending += (current.__cause__, current.__context__)


@web.middleware
async def refuse_encoded_bodies(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """415 for a body with a Content-Encoding, before any handler reads it: inflating
    costs CPU that a few small requests can multiply a thousandfold. The server never
    inflates (`auto_decompress=False`, see `Server.start`)."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding and encoding != "identity":
        raise Refusal(415, "request bodies with a Content-Encoding are not accepted; send "
                           "them unencoded", headers={"Connection": "close"})
    return await handler(request)


@web.middleware
async def body_deadline(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """408 when the body has not all arrived `[http] body_timeout` after the headers: a
    client trickling it must not hold the handler (and its connection) for ever."""
    if not request.body_exists or request.content.is_eof():
        return await handler(request)
    timeout = request.app[RUNTIME_KEY].config.file.http.body_timeout
    cut = asyncio.get_running_loop().call_later(timeout, _cut_off, request.content, timeout)
    try:
        return await handler(request)
    finally:
        cut.cancel()


def _cut_off(content: StreamReader, timeout: float) -> None:
    # The handler's pending (or next) read raises it; the error middleware answers.
    if not content.is_eof():
        content.set_exception(Refusal(408, f"the request body did not arrive within "
                                           f"{timeout:g} s", headers={"Connection": "close"}))


def _allow(error: web.HTTPException) -> dict[str, str] | None:
    allow = error.headers.get("Allow")
    return {"Allow": allow} if allow else None


def create_app(runtime: Runtime) -> web.Application:
    """The application with every enabled plugin's routes."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[errors_as_json,
                                                                refuse_encoded_bodies,
                                                                body_deadline])
    app[RUNTIME_KEY] = runtime

    def register(method: str, path: str, handler: RouteHandler) -> None:
        app.router.add_route(method, path, handler)

    runtime.plugins.register_routes(runtime, register)
    return app
