"""The yardstick for ingest: a bare aiohttp handler that only parses the form and answers 200.

Run as `python -m bench.bare <port>`, in its own process like the gateway and on the same
event loop (`pbxsms.core.eventloop`), so the ratio compares our work, not the loops.
"""

from __future__ import annotations

import sys

from aiohttp import web

from pbxsms.core import eventloop


async def webhook(request: web.Request) -> web.Response:
    await request.post()
    return web.Response(text="ok")


def main(port: int) -> None:
    app = web.Application()
    app.router.add_post("/webhook/clicksend/sms", webhook)
    app.router.add_get("/healthz", health)
    factory = eventloop.loop_factory()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None,
                loop=factory() if factory else None)


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


if __name__ == "__main__":
    main(int(sys.argv[1]))
