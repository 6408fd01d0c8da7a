"""Media bytes in a JetStream Object Store bucket (no second storage system).

The bucket keeps each object for `PBXSMS_MEDIA_RETENTION` (its TTL), replicated like the
stream. Object names are random (`secrets.token_urlsafe`), so an id in an event or a
link tells nothing about another one. An item fetched again after a crash gets a new
name; the unused one expires with the bucket's TTL.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import weakref
from typing import TYPE_CHECKING

from nats.js.api import ObjectMeta, ObjectStoreConfig, StorageType
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

from pbxsms.core.media.settings import MediaSettings
from pbxsms.core.model.events import MediaItem

if TYPE_CHECKING:
    from pbxsms.core.serve.runtime import Runtime

BUCKET = "sms_media"


class MediaStore:
    """Puts and gets media; the bucket is created on first use."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._store: ObjectStore | None = None
        self._lock = asyncio.Lock()

    async def _bucket(self) -> ObjectStore:
        async with self._lock:
            if self._store is None:
                js = self.runtime.js
                settings = self.runtime.config.plugin("media", MediaSettings)
                try:
                    self._store = await js.object_store(BUCKET)
                except (BucketNotFoundError, NotFoundError):
                    self._store = await js.create_object_store(BUCKET, ObjectStoreConfig(
                        description="pbxsms MMS media", ttl=settings.retention,
                        storage=StorageType.FILE,
                        replicas=self.runtime.config.file.bus.replicas))
            return self._store

    async def put(self, data: bytes, content_type: str) -> MediaItem:
        """Store `data` under a new unguessable id."""
        item = MediaItem(id=secrets.token_urlsafe(24), content_type=content_type,
                         size=len(data), sha256=hashlib.sha256(data).hexdigest())
        description = json.dumps({"content_type": content_type, "sha256": item.sha256})
        await (await self._bucket()).put(item.id, data,
                                         ObjectMeta(name=item.id, description=description))
        return item

    async def info(self, media_id: str) -> MediaItem | None:
        """The item without its bytes; None when there is no such object."""
        try:
            info = await (await self._bucket()).get_info(media_id)
        except (ObjectNotFoundError, NotFoundError):
            return None
        meta = _meta(info.description)
        content_type, digest = meta.get("content_type"), meta.get("sha256")
        if not isinstance(content_type, str) or not isinstance(digest, str):
            return None  # not stored by us: nothing says what it is
        return MediaItem(id=media_id, content_type=content_type, size=info.size or 0,
                         sha256=digest)

    async def get(self, media_id: str) -> tuple[MediaItem, bytes] | None:
        """The item and its bytes; None when there is no such object (or it expired)."""
        try:
            result = await (await self._bucket()).get(media_id)
        except (ObjectNotFoundError, NotFoundError):
            return None
        info, data = result.info, result.data or b""
        meta = _meta(info.description)
        return MediaItem(id=media_id, content_type=str(meta.get("content_type")
                                                       or "application/octet-stream"),
                         size=len(data), sha256=hashlib.sha256(data).hexdigest()), data


def _meta(description: str | None) -> dict[str, object]:
    try:
        meta = json.loads(description or "{}")
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


_STORES: weakref.WeakKeyDictionary[Runtime, MediaStore] = weakref.WeakKeyDictionary()


def media_store(runtime: Runtime) -> MediaStore:
    """The runtime's one MediaStore."""
    store = _STORES.get(runtime)
    if store is None:
        store = _STORES[runtime] = MediaStore(runtime)
    return store
