"""Media files a carrier simulator hosts for the inbound MMS it pushes: the bytes, their
type, and every fetch (with the `Authorization` it carried), served as plain HTTP."""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import ClientSession, web

from pbxsms.sim.server import ControlError


@dataclass
class HostedMedia:
    """One file of an inbound MMS, and who fetched it."""

    content_type: str
    data: bytes
    # (when, the Authorization header sent or None), one per fetch.
    fetches: list[tuple[float, str | None]] = field(default_factory=list)

    def record(self, request: web.Request) -> None:
        self.fetches.append((time.time(), request.headers.get("Authorization")))

    def response(self) -> web.Response:
        return web.Response(body=self.data, content_type=self.content_type)


def media_arg(value: object) -> list[tuple[bytes, str]]:
    """A control's `media`: `[{"content": "<base64>", "content_type": "image/png"}]`."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ControlError("media must be a list of {content, content_type} objects")
    found = []
    for item in value:
        content = item.get("content") if isinstance(item, dict) else None
        kind = item.get("content_type", "image/jpeg") if isinstance(item, dict) else None
        if not isinstance(content, str) or not isinstance(kind, str):
            raise ControlError("each media item needs a base64 content string and an "
                               "optional content_type string")
        try:
            found.append((base64.b64decode(content, validate=True), kind))
        except (binascii.Error, ValueError) as exc:
            raise ControlError("media content must be base64") from exc
    return found


# What a carrier got of one picture of an MMS it was asked to send: (url, HTTP status or 0
# when unreachable, bytes).
SentMedia = tuple[str, int, bytes]


async def fetch_sent_media(session: ClientSession, urls: Sequence[str], into: list[SentMedia],
                           through: Callable[[str], str] = lambda url: url) -> None:
    """Fetch the pictures of an MMS to send, as the carrier does once it queued it
    (`through` maps a public URL to where it really is)."""
    for url in urls:
        try:
            async with session.get(through(url)) as response:
                into.append((url, response.status, await response.read()))
        except Exception:  # the carrier reports the failure later; here status 0
            into.append((url, 0, b""))
