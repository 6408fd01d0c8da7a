"""Media of outbound MMS: uploading bytes (`POST /api/v1/media`), naming them in a send
request, and making every item of a request stored media before it goes to a provider.

A send request names media as `{"id": ...}` (uploaded, or put in the `sms_media` bucket
by a PBX service) or `{"url": ...}`; URLs are fetched by the dispatcher through the same
guarded fetch as inbound media, from the hosts of PBXSMS_MEDIA_OUTBOUND_HOSTS only.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from pbxsms.bus.consumer import Retry
from pbxsms.core.media.fetch import FetchFailed, FetchPolicy, FetchRefused, MediaFetcher, describe
from pbxsms.core.media.inbound import limits
from pbxsms.core.media.settings import MediaSettings
from pbxsms.core.media.store import media_store
from pbxsms.core.media.types import ALLOWED_TYPES, sniff, sniff_matches
from pbxsms.core.model.events import MediaItem, OutboundRequest
from pbxsms.core.refusal import Refusal
from pbxsms.core.registry import RouteHandler
from pbxsms.core.serve.http import require_api_token
from pbxsms.core.serve.runtime import Runtime

log = logging.getLogger("pbxsms.media")

UPLOAD_PATH = "/api/v1/media"


class MediaInvalid(Refusal):
    """A 422: a media reference we refuse; `field` names it."""

    def __init__(self, message: str, field: str = "media") -> None:
        super().__init__(422, message, field)


def upload_handler(runtime: Runtime) -> RouteHandler:
    """`POST /api/v1/media`: the raw bytes as the body, their type as Content-Type;
    201 `{id, content_type, size, sha256}` to name in a send's `media`."""

    async def upload(request: web.Request) -> web.Response:
        require_api_token(request, runtime.config.core.api_token)
        settings = runtime.config.plugin("media", MediaSettings)
        declared = request.content_type.lower()
        if declared not in ALLOWED_TYPES:
            raise Refusal(415, f"content type {declared or '(none)'} is not an allowed "
                               f"media type: {', '.join(sorted(ALLOWED_TYPES))}")
        too_large = Refusal(413, f"larger than PBXSMS_MEDIA_MAX_BYTES ({settings.max_bytes})")
        if request.content_length is not None and request.content_length > settings.max_bytes:
            raise too_large
        # Read here with our own cap: the app's 64 KiB body limit is for JSON calls.
        data = bytearray()
        async for chunk in request.content.iter_chunked(64 * 1024):
            data += chunk
            if len(data) > settings.max_bytes:
                raise too_large
        if not data:
            raise Refusal(400, "the body is empty: send the file's bytes")
        if not sniff_matches(declared, bytes(data)):
            found = sniff(bytes(data))
            raise Refusal(422, f"declared {declared} but the bytes are "
                               f"{found or 'of no allowed type'}")
        item = await media_store(runtime).put(bytes(data), declared)
        log.info("media %s uploaded (%s, %d bytes)", item.id[:8], item.content_type, item.size)
        return web.json_response(item.model_dump(), status=201)

    return upload


async def with_media(runtime: Runtime, request: OutboundRequest,
                     data: dict[str, Any]) -> OutboundRequest:
    """`request` with the `media` and `subject` of the API's JSON: ids looked up in the
    store, URLs kept for the dispatcher to fetch. MediaInvalid names what is wrong."""
    settings = runtime.config.plugin("media", MediaSettings)
    update: dict[str, Any] = {}
    subject = data.get("subject")
    if subject is not None:
        if not isinstance(subject, str) or not subject.strip() or len(subject) > 20:
            raise MediaInvalid("subject must be 1 to 20 characters", "subject")
        update["subject"] = subject
    media = data.get("media")
    if media is not None:
        if not isinstance(media, list) or not media:
            raise MediaInvalid('media must be a list of {"id": ...} or {"url": ...}')
        if len(media) > settings.max_items:
            raise MediaInvalid(f"at most {settings.max_items} media items "
                               "(PBXSMS_MEDIA_MAX_ITEMS)")
        ids, urls = [], []
        for index, entry in enumerate(media):
            where = f"media[{index}]"
            if isinstance(entry, dict) and len(entry) == 1 and isinstance(
                    entry.get("id"), str) and 16 <= len(entry["id"]) <= 64:
                ids.append(entry["id"])
            elif isinstance(entry, dict) and len(entry) == 1 and isinstance(
                    entry.get("url"), str) and entry["url"].startswith("https://"):
                urls.append(entry["url"])
            else:
                raise MediaInvalid(f'{where} must be {{"id": ...}} (from {UPLOAD_PATH}) or '
                                   '{"url": "https://..."}', where)
        if ids:
            runtime.require_bus()  # a 503 at once, not after the store's read timeout
        update["media"] = await lookup_ids(runtime, ids)
        update["media_urls"] = urls
    return request.model_copy(update=update) if update else request


async def lookup_ids(runtime: Runtime, ids: list[str]) -> list[MediaItem]:
    """The stored items of `ids`; MediaInvalid for one that is not (or no longer) stored."""
    items = []
    for index, media_id in enumerate(ids):
        item = await media_store(runtime).info(media_id)
        if item is None:
            raise MediaInvalid(f"media {media_id[:8]}... is not stored (expired, or never "
                               f"uploaded to {UPLOAD_PATH})", f"media[{index}]")
        items.append(item)
    return items


async def resolve(runtime: Runtime, request: OutboundRequest,
                  fetcher: MediaFetcher | None = None) -> list[MediaItem]:
    """Every media item of `request`, stored: its `media` checked to exist, its
    `media_urls` fetched and stored. MediaInvalid when one is refused for good (the send
    fails with the reason), Retry when a host is unreachable for now."""
    settings = runtime.config.plugin("media", MediaSettings)
    items = list(request.media)
    for index, item in enumerate(items):
        if await media_store(runtime).info(item.id) is None:
            raise MediaInvalid(f"media {item.id[:8]}... is not stored (expired?)",
                               f"media[{index}]")
    policy = FetchPolicy(hosts=tuple(settings.outbound_hosts))
    for url in request.media_urls:
        try:
            fetched = await (fetcher or MediaFetcher()).fetch(url, policy, limits(settings))
        except FetchRefused as error:
            raise MediaInvalid(f"media {describe(url)}: {error.reason}") from error
        except FetchFailed as error:
            raise Retry(f"media {describe(url)}: {error.reason}") from error
        items.append(await media_store(runtime).put(fetched.data, fetched.content_type))
    return items
