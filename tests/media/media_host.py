"""A real HTTP server on loopback that serves pictures, and misbehaves on request."""

from __future__ import annotations

from aiohttp import web

from tests.helpers import free_port
from tests.support.media import JPEG


class MediaHost:
    """`/pic/{name}` serves what `files` holds; `/redirect?to=` redirects; `/html` is a
    web page declared as a JPEG; `/endless` streams chunks with no length."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[str, bytes]] = {"a.jpg": ("image/jpeg", JPEG)}
        self.hits: list[str] = []
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.origin}{path}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/pic/{name}", self.pic)
        app.router.add_get("/redirect", self.redirect)
        app.router.add_get("/html", self.html)
        app.router.add_get("/endless", self.endless)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def pic(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        found = self.files.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        return web.Response(body=found[1], content_type=found[0])

    async def redirect(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        raise web.HTTPFound(request.query["to"])

    async def html(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        return web.Response(body=b"<!doctype html><script>alert(1)</script>",
                            content_type="image/jpeg")

    async def endless(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(request.path)
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(JPEG)
        for _ in range(200):
            await response.write(b"\0" * 4096)
        await response.write_eof()
        return response
