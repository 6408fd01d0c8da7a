"""Twilio's webhook signature, `X-Twilio-Signature`: base64 HMAC-SHA1, keyed with the Auth
Token, over the full URL Twilio called followed by the POST parameters sorted by name
(each name, then its values sorted, no separators). A JSON body is covered instead by
the URL's `bodySHA256` query parameter (hex SHA-256 of the body), the signature then
covering the URL alone. As Twilio's own validator does, the URL is tried with and
without the scheme's default port, because Twilio signs either.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit, urlunsplit

HEADER = "X-Twilio-Signature"
# Present when a Webhook Rule signs with a SharedKey (HMAC-SHA256) instead of the token.
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
BODY_HASH = "bodySHA256"
_DEFAULT_PORTS = {"https": 443, "http": 80}


def compute(token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """The signature Twilio sends for a request to `url` with form `params`."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    signed = url + "".join(name + value for name in sorted(values)
                           for value in sorted(values[name]))
    digest = hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def url_forms(url: str) -> list[str]:
    """`url` as given, and with its default port added or removed."""
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        return [url]
    if default is None or (port is not None and port != default):
        return [url]
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    other = f"{prefix}{host}" if port else f"{prefix}{host}:{default}"
    return [url, urlunsplit(parts._replace(netloc=other))]


def body_hash_matches(url: str, body: bytes) -> bool:
    """Whether `url` carries `bodySHA256` equal to the SHA-256 of `body` (constant time)."""
    given = [value for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True)
             if name == BODY_HASH]
    if len(given) != 1:
        return False
    return hmac.compare_digest(given[0].lower().encode(),
                               hashlib.sha256(body).hexdigest().encode())


def valid(token: str, url: str, params: Iterable[tuple[str, str]], given: str | None) -> bool:
    """Whether `given` is Twilio's signature of this request (constant-time compare)."""
    if not token or not given:
        return False
    pairs = list(params)
    matches = [hmac.compare_digest(compute(token, form, pairs).encode(), given.encode())
               for form in url_forms(url)]
    return any(matches)
