"""HTTP helpers shared by every route: the JSON error body, token checks and the API's
caller (operator or tenant), JSON bodies, and the public URL a carrier reaches a route at."""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import SecretStr

from pbxsms.core.refusal import Refusal

if TYPE_CHECKING:
    from pbxsms.core.config.settings import CoreSettings


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


@dataclass(frozen=True)
class Caller:
    """Who calls the API: the operator (`domain` None: every tenant) or one tenant."""

    domain: str | None = None

    def sees(self, domain: str | None) -> bool:
        """Whether this caller may see or act on something of tenant `domain`."""
        return self.domain is None or (domain or "").lower() == self.domain


def api_caller(request: web.Request, core: CoreSettings) -> Caller:
    """The caller by its Bearer token (PBXSMS_API_TOKEN or one of PBXSMS_TENANT_TOKENS);
    Refusal 401 for any other."""
    operator = core.api_token.get_secret_value() if core.api_token else ""
    if not operator and not core.tenant_tokens:
        raise Refusal(401, "the API is disabled: set PBXSMS_API_TOKEN to enable it")
    presented = bearer_token(request)
    if presented is not None:
        # Every token is compared, so the time taken does not tell which one came close.
        found = [Caller()] if operator and same_secret(presented, operator) else []
        found += [Caller(domain) for domain, token in core.tenant_tokens.items()
                  if same_secret(presented, token.get_secret_value())]
        if found:
            return found[0]
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
