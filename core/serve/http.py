"""HTTP helpers shared by every route: the JSON error body, token checks, JSON bodies, and
the public URL a carrier reaches a route at."""

from __future__ import annotations

import hmac
import json
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from pbxsms.core.refusal import Refusal


def json_error(status: int, message: str, field: str | None = None,
               headers: dict[str, str] | None = None) -> web.Response:
    """The one error shape: `{"error": ..., "field": ...}`. Handlers raise `Refusal`; the
    error middleware answers with this."""
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status, headers=headers)


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison, so response timing leaks nothing about the secret."""
    if given is None:
        return False
    # A header or query may hold bytes that are not UTF-8 (kept as surrogate escapes):
    # compared as the bytes that came, never an encoding error.
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                               expected.encode("utf-8", "surrogateescape"))


def public_url(base: str | None, path: str) -> str | None:
    """`PBXSMS_PUBLIC_URL` (given as `base`) joined with a route's `path`; None when unset.

    Carriers are told this URL, and some sign it (Twilio): behind a TLS proxy it is the
    address they used, which the request's own URL is not.
    """
    base = (base or "").strip().rstrip("/")
    return f"{base}/{path.lstrip('/')}" if base else None


def bearer_token(request: web.Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def require_api_token(request: web.Request, token: SecretStr | None) -> None:
    """Refusal 401 unless the request carries the API's Bearer token."""
    if token is None or not token.get_secret_value():
        raise Refusal(401, "the API is disabled: set PBXSMS_API_TOKEN to enable it")
    if not same_secret(bearer_token(request), token.get_secret_value()):
        raise Refusal(401, "missing or wrong Bearer token",
                      headers={"WWW-Authenticate": 'Bearer realm="pbxsms"'})


async def read_json(request: web.Request) -> object:
    """The body as JSON, read as UTF-8 whatever charset the request declares (an unknown
    one must not fail the handler); ValueError when it is not JSON, however broken."""
    raw = await request.read()
    try:
        return json.loads(raw)
    except RecursionError as error:
        raise ValueError("JSON nested too deeply") from error


def parse_json(raw: bytes) -> object:
    """A webhook's raw body (read first, for its signature) as JSON; Refusal 400 when it
    is not JSON, however broken."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise Refusal(400, f"malformed JSON: {error}") from None


async def json_body(request: web.Request) -> object:
    """The JSON body of an API call; Refusal 415 or 400 when it is not JSON."""
    if request.content_type != "application/json":
        raise Refusal(415, "send JSON with Content-Type: application/json")
    try:
        return await read_json(request)
    except ValueError as error:
        raise Refusal(400, f"the body is not valid JSON: {error}") from None
