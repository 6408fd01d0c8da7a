"""The yardstick for ingest: a bare aiohttp handler that only parses the form and answers 200.

Run as `python -m bench.bare <port>`, in its own process like the gateway.
"""

from __future__ import annotations

import sys

from aiohttp import web


async def webhook(request: web.Request) -> web.Response:
    await request.post()
    return web.Response(text="ok")


def main(port: int) -> None:
    app = web.Application()
    app.router.add_post("/webhook/clicksend/sms", webhook)
    app.router.add_get("/healthz", health)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


if __name__ == "__main__":
    main(int(sys.argv[1]))
