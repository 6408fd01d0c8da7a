"""Telnyx webhook signatures: Ed25519 over `<telnyx-timestamp>|<raw body>` with the
account's public key, and a timestamp window so an old webhook cannot be replayed.

The `cryptography` package verifies (the Telnyx SDK uses PyNaCl for the same check);
the raw bytes are verified as received, never re-serialised JSON.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"


class BadSignature(Exception):
    """The webhook is not proven to come from Telnyx; the text says why (no secrets)."""


class BadKey(ValueError):
    """TELNYX_PUBLIC_KEY is not a base64 Ed25519 public key."""


def public_key(value: str) -> Ed25519PublicKey:
    """The key from its base64 text (Mission Control shows it so)."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError) as error:
        raise BadKey("TELNYX_PUBLIC_KEY is not the base64 of a 32-byte Ed25519 public "
                     "key") from error


def signed_bytes(timestamp: str, body: bytes) -> bytes:
    return timestamp.encode() + b"|" + body


def verify(key: Ed25519PublicKey, headers: Mapping[str, str], body: bytes,
           tolerance: float, now: float | None = None) -> str:
    """The signature (base64) when valid and fresh; BadSignature otherwise."""
    signature = headers.get(SIGNATURE_HEADER)
    timestamp = headers.get(TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise BadSignature(f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header")
    timestamp = timestamp.strip()
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise BadSignature(f"{TIMESTAMP_HEADER} is not Unix seconds")
    skew = (time.time() if now is None else now) - int(timestamp)
    if abs(skew) > tolerance:
        raise BadSignature(f"{TIMESTAMP_HEADER} is {skew:+.0f}s from now, outside the "
                           f"±{tolerance:.0f}s window (stale or replayed)")
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except binascii.Error:
        raise BadSignature(f"{SIGNATURE_HEADER} is not base64") from None
    if len(raw) != 64:
        raise BadSignature(f"{SIGNATURE_HEADER} is not a 64-byte Ed25519 signature")
    try:
        key.verify(raw, signed_bytes(timestamp, body))
    except InvalidSignature:
        raise BadSignature("the signature does not match the body and timestamp") from None
    return signature.strip()
