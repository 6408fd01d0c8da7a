"""Signed media links: `/media/<id>.<expiry>.<signature>`, HMAC-SHA256 under
PBXSMS_MEDIA_URL_SECRET, or when that is unset a random key the first gateway creates in
the KV bucket `sms_media_keys` (every instance then signs and checks with it). Without the
key a link cannot be made or guessed; past its expiry it is refused; there is no listing."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import re
import secrets
import time
import weakref
from typing import TYPE_CHECKING

from nats.js.errors import KeyWrongLastSequenceError

from pbxsms.core.media.settings import MediaSettings

if TYPE_CHECKING:
    from pbxsms.core.serve.runtime import Runtime

PATH = "/media/{signed}"
KEYS_BUCKET = "sms_media_keys"
_KEY = "link"
_KEYS: weakref.WeakKeyDictionary[Runtime, str] = weakref.WeakKeyDictionary()
_SIGNED = re.compile(r"^([A-Za-z0-9_-]{16,64})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})$")


class BadLink(Exception):
    """A link that is not one of ours, or no longer valid; `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _signature(secret: str, media_id: str, expires: int) -> str:
    digest = hmac.new(secret.encode(), f"{media_id}.{expires}".encode(),
                      hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(secret: str, media_id: str, ttl: float, now: float | None = None) -> str:
    """The signed id of `media_id`, valid for `ttl` seconds."""
    expires = int((time.time() if now is None else now) + ttl)
    return f"{media_id}.{expires}.{_signature(secret, media_id, expires)}"


def verify(secret: str, signed: str, now: float | None = None) -> str:
    """The media id of a valid signed id; BadLink otherwise."""
    match = _SIGNED.match(signed)
    if match is None:
        raise BadLink("not a signed media link")
    media_id, expires_text, given = match.groups()
    expires = int(expires_text)
    if not hmac.compare_digest(given, _signature(secret, media_id, expires)):
        raise BadLink("the link's signature is wrong")
    if (time.time() if now is None else now) > expires:
        raise BadLink("the link has expired")
    return media_id


def media_url(public_url: str, secret: str, media_id: str, ttl: float) -> str:
    """The full link under PBXSMS_PUBLIC_URL."""
    return public_url.rstrip("/") + PATH.format(signed=sign(secret, media_id, ttl))


async def link_secret(runtime: Runtime) -> str:
    """PBXSMS_MEDIA_URL_SECRET, else the gateways' shared generated key (made once)."""
    settings = runtime.config.plugin("media", MediaSettings)
    if settings.url_secret is not None and settings.url_secret.get_secret_value():
        return str(settings.url_secret.get_secret_value())
    known = _KEYS.get(runtime)
    if known is not None:
        return known
    bucket = await runtime.bucket(KEYS_BUCKET)
    value, _ = await bucket.get(_KEY)
    if not value:
        # Another instance may have made it first: then use theirs.
        with contextlib.suppress(KeyWrongLastSequenceError):
            await bucket.create(_KEY, secrets.token_urlsafe(32).encode())
        value, _ = await bucket.get(_KEY)
    if not value:
        raise RuntimeError("the media link key could not be stored")
    _KEYS[runtime] = value.decode()
    return _KEYS[runtime]
