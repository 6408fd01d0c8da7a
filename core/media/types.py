"""The media types pbxsms accepts, and the first bytes each must start with.

Never HTML or SVG (both carry script when served again). A declared type must agree with
the bytes: a web page sent as `image/jpeg` is refused.
"""

from __future__ import annotations

from collections.abc import Callable

# What carriers deliver as MMS: pictures, short video and audio, contact cards.
ALLOWED_TYPES = frozenset({
    "image/jpeg", "image/png", "image/gif", "image/bmp", "image/webp",
    "video/mp4", "video/3gpp", "audio/amr", "audio/mpeg", "text/vcard", "text/x-vcard",
})

# The file extension each type is sent under (ClickSend keys its rules on it).
EXTENSIONS = {
    "image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/bmp": "bmp",
    "image/webp": "webp", "video/mp4": "mp4", "video/3gpp": "3gp", "audio/amr": "amr",
    "audio/mpeg": "mp3", "text/vcard": "vcf", "text/x-vcard": "vcf",
}


def _ftyp(data: bytes) -> bool:
    return data[4:8] == b"ftyp"


def _mpeg_audio(data: bytes) -> bool:
    return data.startswith(b"ID3") or (len(data) > 1 and data[0] == 0xFF
                                       and data[1] & 0xE0 == 0xE0)


def _vcard(data: bytes) -> bool:
    return data.lstrip(b"\xef\xbb\xbf \t\r\n")[:11].upper() == b"BEGIN:VCARD"


_MAGIC: dict[str, Callable[[bytes], bool]] = {
    "image/jpeg": lambda d: d.startswith(b"\xff\xd8\xff"),
    "image/png": lambda d: d.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/gif": lambda d: d.startswith((b"GIF87a", b"GIF89a")),
    "image/bmp": lambda d: d.startswith(b"BM"),
    "image/webp": lambda d: d.startswith(b"RIFF") and d[8:12] == b"WEBP",
    "video/mp4": _ftyp,
    "video/3gpp": _ftyp,
    "audio/amr": lambda d: d.startswith(b"#!AMR"),
    "audio/mpeg": _mpeg_audio,
    "text/vcard": _vcard,
    "text/x-vcard": _vcard,
}


def sniff_matches(content_type: str, data: bytes) -> bool:
    """Whether `data` starts as `content_type` must; False for a type not known here."""
    check = _MAGIC.get(content_type)
    return check is not None and check(data)


def sniff(data: bytes) -> str | None:
    """The allowed type whose magic `data` starts with, for uploads that declare none."""
    for content_type, check in _MAGIC.items():
        if check(data):
            return content_type
    return None
