"""Console users: names, scrypt password hashes and an optional tenant, in a KV bucket."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
from datetime import datetime

from pydantic import BaseModel, Field

from pbxsms.core.plugin_api import Bucket, hostname, utcnow

USERS_BUCKET = "console_users"

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
# scrypt at n=2**15, r=8: 32 MiB and about 50 ms a check (OWASP's floor is n=2**17 with
# p=1 at 128 MiB; this is its listed equivalent trade of memory for time).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
MIN_PASSWORD = 10


class UserError(ValueError):
    """A user name, domain or password we refuse."""


class User(BaseModel):
    """One console login; `domain` limits it to one tenant's numbers."""

    name: str
    domain: str | None = None
    salt: str
    hash: str
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P
    created_at: datetime = Field(default_factory=utcnow)

    def check(self, password: str) -> bool:
        digest = _scrypt(password, base64.b64decode(self.salt), self.n, self.r, self.p)
        return hmac.compare_digest(digest, base64.b64decode(self.hash))

    @property
    def generation(self) -> str:
        """Changes with the password: sessions signed before a change stop working."""
        return hashlib.sha256(self.hash.encode()).hexdigest()[:12]


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * 1024 * 1024, dklen=32)


def valid_name(name: str) -> str:
    name = name.strip().lower()
    if not _NAME.match(name):
        raise UserError("a user name is 1-64 letters, digits, '.', '_' or '-'")
    return name


def new_user(name: str, password: str, domain: str | None = None) -> User:
    """A user record with a fresh salt; UserError for a bad name, domain or password."""
    name = valid_name(name)
    if domain is not None:
        host = hostname(domain)
        if host is None:
            raise UserError(f"{domain!r} is not a domain name")
        domain = host
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password needs at least {MIN_PASSWORD} characters")
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return User(name=name, domain=domain, salt=base64.b64encode(salt).decode(),
                hash=base64.b64encode(digest).decode())


_decoy: list[User] = []


def _decoy_user() -> User:
    """Checked when the name is unknown, so a wrong name takes as long as a wrong password
    (made on first use: every `pbxsms` command imports this module)."""
    if not _decoy:
        _decoy.append(new_user("decoy", secrets.token_urlsafe(16)))
    return _decoy[0]


class Users:
    """The users bucket: every instance sees a new user at once."""

    def __init__(self, bucket: Bucket) -> None:
        self.bucket = bucket

    async def get(self, name: str) -> User | None:
        try:
            key = valid_name(name)
        except UserError:
            return None
        value, _ = await self.bucket.get(key)
        return User.model_validate_json(value) if value else None

    async def put(self, user: User) -> None:
        await self.bucket.put(user.name, user.model_dump_json().encode())

    async def authenticate(self, name: str, password: str) -> User | None:
        """The user when the password is right. The KDF runs in a thread: it takes tens of
        milliseconds, which must not stall every other request."""
        user = await self.get(name)
        candidate = user if user is not None else _decoy_user()
        right = await asyncio.to_thread(candidate.check, password)
        return user if right and user is not None else None
