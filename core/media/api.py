"""`GET /media/{signed id}`: a stored media item, for whoever holds a valid signed link.

No listing, no plain ids: a link is the item's random id, an expiry and an HMAC over both
(core/media/links.py). An unsigned, altered or expired link is refused (403) without
telling whether the item exists. The answer can never run as a page: `nosniff`, a CSP
that allows nothing, and `attachment` for anything not a picture.
"""

from __future__ import annotations

import logging

from aiohttp import web

from pbxsms.core.media.links import BadLink, link_secret, verify
from pbxsms.core.media.store import media_store
from pbxsms.core.media.types import EXTENSIONS
from pbxsms.core.refusal import Refusal
from pbxsms.core.registry import RouteHandler
from pbxsms.core.serve.runtime import Runtime

log = logging.getLogger("pbxsms.media")


def media_handler(runtime: Runtime) -> RouteHandler:
    async def serve(request: web.Request) -> web.StreamResponse:
        try:
            media_id = verify(await link_secret(runtime), request.match_info["signed"])
        except BadLink as error:
            log.info("refused a media link from %s: %s", request.remote, error.reason)
            raise Refusal(403, error.reason) from None
        found = await media_store(runtime).get(media_id)
        if found is None:
            raise Refusal(404, "no such media (it may have expired)")
        item, data = found
        disposition = "inline" if item.content_type.startswith("image/") else "attachment"
        name = f"{item.id[:12]}.{EXTENSIONS.get(item.content_type, 'bin')}"
        return web.Response(body=data, headers={
            "Content-Type": item.content_type,
            "Content-Disposition": f'{disposition}; filename="{name}"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, max-age=300",
            "Referrer-Policy": "no-referrer",
        })

    return serve
