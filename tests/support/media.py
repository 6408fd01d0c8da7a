"""Pictures for the media tests: small valid files with distinct bytes, and digests."""

from __future__ import annotations

import hashlib
import struct
import zlib


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
