"""The yardsticks for ingest: bare aiohttp handlers on the same event loop as the gateway.

`python -m bench.bare <port>`: only parses the form and answers 200 (the issue's yardstick).
`python -m bench.bare <port> <nats_url>`: also stores each webhook on JetStream before the
200, as nats-py documents it (`js.publish` with a `Nats-Msg-Id` for deduplication, awaiting
the PubAck): the least any gateway that answers 200 only once a message is stored must do,
so it shows how much of the gap to the bare handler the store alone takes.

Each runs in its own process like the gateway, on the same event loop
(`pbxsms.core.serve.eventloop`), so the ratios compare our work, not the loops.
"""

from __future__ import annotations

import sys

import nats
from aiohttp import web
from nats.js.api import StorageType, StreamConfig

from pbxsms.core.serve import eventloop

STREAM, SUBJECT = "BENCH_STORED", "bench.stored"


async def webhook(request: web.Request) -> web.Response:
    await request.post()
    return web.Response(text="ok")


def stored_app(nats_url: str) -> web.Application:
    """The handler that stores each webhook (its form, keyed by ClickSend's message_id)."""
    app = web.Application()

    async def connect(app: web.Application) -> None:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=STREAM, subjects=[SUBJECT],
                                         storage=StorageType.FILE, duplicate_window=120))
        app["nc"], app["js"] = nc, js

    async def close(app: web.Application) -> None:
        await app["nc"].drain()

    async def store(request: web.Request) -> web.Response:
        form = await request.post()
        await request.app["js"].publish(SUBJECT, await request.read(), headers={
            "Nats-Msg-Id": str(form.get("message_id", ""))})
        return web.Response(text="ok")

    app.on_startup.append(connect)
    app.on_cleanup.append(close)
    app.router.add_post("/webhook/clicksend/sms", store)
    return app


def main(port: int, nats_url: str | None = None) -> None:
    if nats_url:
        app = stored_app(nats_url)
    else:
        app = web.Application()
        app.router.add_post("/webhook/clicksend/sms", webhook)
    app.router.add_get("/healthz", health)
    factory = eventloop.loop_factory()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None,
                loop=factory() if factory else None)


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


if __name__ == "__main__":
    main(int(sys.argv[1]), *sys.argv[2:3])
