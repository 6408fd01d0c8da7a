"""The HTTP listener: a cap on open connections, shedding idle ones first.

aiohttp has no connection limit: idle or slow clients could hold every file descriptor
and real webhooks would be reset. Here a new connection beyond `[http] max_connections`
closes the oldest connection that is waiting for a request; when every connection is
busy, the new one is answered 503 and closed. The header deadline is aiohttp's
keep-alive timeout (see `Server.start`); the body deadline is a middleware
(core/serve/app.py). A reverse proxy in front is still expected (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from pbxsms.core.health import metrics

log = logging.getLogger("pbxsms.http")

_BUSY_BODY = json.dumps({"error": "too many connections; try again"}).encode()
BUSY_ANSWER = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
               b"Retry-After: 5\r\nConnection: close\r\n"
               b"Content-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY)


class _Busy(asyncio.Protocol):
    """A connection refused at the cap: 503, then closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(BUSY_ANSWER)
        transport.close()


def _waiting_for_a_request(handler: RequestHandler) -> bool:
    # aiohttp's handler awaits `_waiter` between requests (idle, or headers still
    # arriving); no public attribute tells it.
    waiter: asyncio.Future[None] | None = getattr(handler, "_waiter", None)
    return waiter is not None and not waiter.done()


class CappedSite(web.BaseSite):
    """A TCP site that holds at most `max_connections` connections."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int,
                 max_connections: int) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._max = max_connections

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._connection, self._host, self._port,
                                                reuse_address=True)

    def _connection(self) -> asyncio.BaseProtocol:
        server = self._runner.server
        assert isinstance(server, web.Server)
        connections = server.connections  # oldest first
        if len(connections) >= self._max:
            idle = next((handler for handler in connections
                         if _waiting_for_a_request(handler)), None)
            if idle is None:
                metrics.labelled(metrics.HTTP_CONNECTIONS_SHED, "refused").inc()
                return _Busy()
            metrics.labelled(metrics.HTTP_CONNECTIONS_SHED, "idle_closed").inc()
            idle.force_close()
        return server()

    @property
    def port(self) -> int | None:
        """The port listened on (the one asked for, or the one the system chose for 0)."""
        sockets = getattr(self._server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else None
