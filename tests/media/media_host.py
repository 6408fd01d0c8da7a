"""A real HTTP server on loopback that serves pictures, and misbehaves on request."""

from __future__ import annotations

import hashlib
import struct
import zlib

from aiohttp import web

from tests.helpers import free_port


def png(seed: int, size: int = 64) -> bytes:
    """A small valid PNG whose pixels depend on `seed` (distinct bytes per picture)."""
    row = bytes([0] + [(seed * 37 + x) % 256 for x in range(size * 3)])
    raw = row * size

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4 + b"\xff\xd9"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
