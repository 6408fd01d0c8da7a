"""Console sessions: the signed cookie, the CSRF token, the Origin check, login limits and
the headers every console answer carries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from pbxsms.plugins.console.users import User

COOKIE = "pbxsms_console"

# No inline script or style anywhere: everything the pages load comes from /console/static.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Session:
    """A signed-in user, and the token their forms must carry."""

    user: User
    nonce: str
    expires: int
    csrf: str

    @property
    def domain(self) -> str | None:
        return self.user.domain


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def hmac_equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def csrf_token(key: bytes, nonce: str) -> str:
    """Bound to one session: a token taken from another session is worthless."""
    return _sign(key, f"csrf:{nonce}")


def issue(key: bytes, user: User, ttl: float, now: float | None = None) -> str:
    """A cookie value naming `user` until `now + ttl`, signed with `key`."""
    expires = int((now if now is not None else time.time()) + ttl)
    claims = {"u": user.name, "g": user.generation, "e": expires,
              "n": secrets.token_urlsafe(12)}
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{payload}.{_sign(key, payload)}"


@dataclass(frozen=True)
class Claims:
    name: str
    generation: str
    expires: int
    nonce: str


def verify(key: bytes, value: str, now: float | None = None) -> Claims | None:
    """The cookie's claims when its signature is ours and it has not expired."""
    payload, _, signature = value.partition(".")
    if not payload or not hmac.compare_digest(signature.encode(), _sign(key, payload).encode()):
        return None
    try:
        claims = json.loads(_unb64(payload))
        found = Claims(str(claims["u"]), str(claims["g"]), int(claims["e"]), str(claims["n"]))
    except (ValueError, KeyError, TypeError):
        return None
    return found if found.expires > (now if now is not None else time.time()) else None


def session_for(key: bytes, claims: Claims, user: User | None) -> Session | None:
    """The session, when the user still exists with the password the cookie was made for."""
    if user is None or user.generation != claims.generation:
        return None
    return Session(user, claims.nonce, claims.expires, csrf_token(key, claims.nonce))


def set_cookie(response: web.StreamResponse, request: web.Request, value: str,
               ttl: float, public_url: str | None) -> None:
    response.set_cookie(COOKIE, value, max_age=int(ttl), path="/console", httponly=True,
                        samesite="Strict", secure=_secure(request, public_url))


def clear_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/console")


def _secure(request: web.Request, public_url: str | None) -> bool:
    return request.secure or (public_url or "").lower().startswith("https://")


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def same_origin(request: web.Request, public_url: str | None) -> bool:
    """Whether a form was posted from our own pages: Origin (else Referer) must be this
    server as the browser reached it, or PBXSMS_PUBLIC_URL. Neither header: refused."""
    given = request.headers.get("Origin")
    if given is None or given == "null":
        referer = request.headers.get("Referer")
        given = _origin(referer) if referer else None
        if given is None:
            return False
    allowed = {f"{request.scheme}://{request.host}".lower()}
    if public_url:
        public = _origin(public_url)
        if public:
            allowed.add(public)
    return given.lower().rstrip("/") in allowed


class LoginLimiter:
    """Failed logins per key (an address, a user name) in a sliding window."""

    def __init__(self, attempts: int, window: float, keys: int = 10_000) -> None:
        self.attempts, self.window, self.keys = attempts, window, keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def blocked_for(self, *keys: str, now: float | None = None) -> float:
        """Seconds until every key may try again (0: it may now)."""
        now = now if now is not None else time.monotonic()
        wait = 0.0
        for key in keys:
            failures = self._failures.get(key)
            if failures is None:
                continue
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            if len(failures) >= self.attempts:
                wait = max(wait, failures[0] + self.window - now)
        return wait

    def failed(self, *keys: str, now: float | None = None) -> None:
        now = now if now is not None else time.monotonic()
        for key in keys:
            self._failures.setdefault(key, deque(maxlen=self.attempts)).append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > self.keys:
            self._failures.popitem(last=False)

    def succeeded(self, name_key: str) -> None:
        # The address keeps its record: one right password must not reset a guesser.
        self._failures.pop(name_key, None)
