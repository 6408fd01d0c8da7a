"""Fetching a media URL that came from outside, safely (SSRF, size, type).

Every URL is hostile until checked: https only, a host on the policy's allow-list, every
address it resolves to global (no loopback, private, link-local, CGNAT, metadata), the
connection made to exactly the address checked (a pinning resolver: no second lookup for
DNS rebinding to exploit), redirects followed by hand and each hop checked again, the body
counted while it streams and cut at the cap, and its type on an allow-list and matching
its first bytes. A simulator on loopback is reached only through `FetchPolicy.simulator`,
one exact origin a plugin setting names; there is no switch that turns the checks off.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urljoin

import aiohttp
from aiohttp import ClientSession, ClientTimeout, DummyCookieJar, TCPConnector
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from pbxsms.core import __version__
from pbxsms.core.media.types import sniff_matches

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Cloud metadata services; `is_global` already refuses them, named here for the reason.
_METADATA = frozenset({ipaddress.ip_address("169.254.169.254"),
                       ipaddress.ip_address("fd00:ec2::254")})


class FetchRefused(Exception):
    """The URL or what it served is refused for good; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FetchFailed(Exception):
    """The host could not be reached or answered an error now; worth another try later."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class FetchPolicy:
    """What one source of URLs (a provider plugin, the send API) may fetch.

    `hosts`: exact host names, or `.example.com` for the domain and its subdomains.
    `simulator`: one origin (`http://127.0.0.1:8765`) exempt from the scheme and address
    checks, for a local simulator; a redirect away from it is checked as usual.
    """

    hosts: tuple[str, ...]
    simulator: str | None = None
    # An `Authorization` header (a carrier whose media need its credentials), sent only to
    # the first URL's exact host, never to where it redirects.
    authorization: str | None = field(default=None, repr=False)

    def host_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        for allowed in self.hosts:
            allowed = allowed.lower().strip()
            if allowed.startswith("."):
                if host == allowed[1:] or host.endswith(allowed):
                    return True
            elif host == allowed:
                return True
        return False

    def is_simulator(self, url: URL) -> bool:
        if not self.simulator:
            return False
        origin = URL(self.simulator)
        return (url.scheme, url.host, url.port) == (origin.scheme, origin.host, origin.port)


@dataclass(frozen=True)
class Limits:
    """The caps of one fetch: bytes per item, the allowed types, and the timeouts."""

    max_bytes: int = 5_000_000
    content_types: frozenset[str] = frozenset()
    total_timeout: float = 30.0
    connect_timeout: float = 5.0
    read_timeout: float = 10.0


@dataclass(frozen=True)
class Fetched:
    """A fetched item: its bytes, checked type and digest."""

    data: bytes
    content_type: str
    sha256: str
    url: URL = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.data)


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (the system's resolver)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_refusal(address: IPAddress) -> str | None:
    """Why an address may not be fetched from, or None when it is a global one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in _METADATA:
        return f"{address} is a cloud metadata address"
    if address.is_loopback:
        return f"{address} is a loopback address"
    if address.is_private:
        return f"{address} is a private address"
    if address.is_link_local:
        return f"{address} is a link-local address"
    if not address.is_global or address.is_multicast:
        return f"{address} is not a global address"
    return None


class _PinnedResolver(AbstractResolver):
    """Answers only the checked host, with only the checked addresses."""

    def __init__(self, host: str, addresses: Sequence[str]) -> None:
        self.host = host
        self.addresses = addresses

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if host != self.host:
            raise OSError(f"{host} was not checked")
        return [ResolveResult(hostname=host, host=address, port=port,
                              family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST)
                for address in self.addresses]

    async def close(self) -> None:
        return None


class MediaFetcher:
    """Fetches media URLs under a policy and limits; one isolated session per hop."""

    def __init__(self, resolver: Resolver = system_resolver) -> None:
        self.resolver = resolver

    async def fetch(self, url: str, policy: FetchPolicy, limits: Limits) -> Fetched:
        """The checked bytes of `url`; FetchRefused (for good) or FetchFailed (try later)."""
        current = _parse(url)
        first_host = current.host
        for _ in range(MAX_REDIRECTS + 1):
            addresses = await self._check(current, policy)
            auth = policy.authorization if current.host == first_host else None
            answer = await self._get(current, addresses, limits, auth)
            if isinstance(answer, Fetched):
                return answer
            current = answer
        raise FetchRefused(f"more than {MAX_REDIRECTS} redirects")

    async def _check(self, url: URL, policy: FetchPolicy) -> list[str] | None:
        """The addresses to connect to (None: the simulator's, as the system resolves)."""
        if policy.is_simulator(url):
            return None
        if url.scheme != "https":
            raise FetchRefused(f"{url.scheme}:// is refused: only https")
        host = url.host or ""
        try:
            literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None:
            why = address_refusal(literal)
            raise FetchRefused(f"the host is an IP address ({host})"
                               + (f": {why}" if why else ", not a name on the allow-list"))
        if not policy.host_allowed(host):
            raise FetchRefused(f"host {host} is not on the allow-list")
        port = url.port or 443
        try:
            found = await self.resolver(host, port)
        except OSError as error:
            raise FetchFailed(f"cannot resolve {host}: {error}") from error
        if not found:
            raise FetchFailed(f"{host} resolves to no address")
        for text in found:
            try:
                address = ipaddress.ip_address(text.split("%", 1)[0])
            except ValueError as error:
                raise FetchRefused(f"{host} resolves to {text!r}, not an address") from error
            why = address_refusal(address)
            if why is not None:
                raise FetchRefused(f"{host} resolves to {why}")
        return list(found)

    async def _get(self, url: URL, addresses: list[str] | None, limits: Limits,
                   authorization: str | None) -> Fetched | URL:
        """One hop: the item, or the next URL of a redirect."""
        resolver = _PinnedResolver(url.host or "", addresses) if addresses is not None \
            else None
        connector = TCPConnector(resolver=resolver, limit=2, force_close=True,
                                 use_dns_cache=False)
        timeout = ClientTimeout(total=limits.total_timeout,
                                sock_connect=limits.connect_timeout,
                                sock_read=limits.read_timeout)
        headers = {"User-Agent": f"pbxsms/{__version__}", "Accept": "*/*"}
        if authorization:
            headers["Authorization"] = authorization
        try:
            async with ClientSession(connector=connector, timeout=timeout, trust_env=False,
                                     cookie_jar=DummyCookieJar(), auto_decompress=False,
                                     headers=headers) as session, \
                    session.get(url, allow_redirects=False) as response:
                if response.status in _REDIRECTS:
                    location = response.headers.get("Location")
                    if not location:
                        raise FetchRefused(f"redirect {response.status} without Location")
                    return _parse(urljoin(str(url), location))
                if response.status in (408, 425, 429) or response.status >= 500:
                    raise FetchFailed(f"{url.host} answered HTTP {response.status}")
                if response.status != 200:
                    raise FetchRefused(f"{url.host} answered HTTP {response.status}")
                return await _read(response, url, limits)
        except (FetchRefused, FetchFailed):
            raise
        except TimeoutError as error:
            raise FetchFailed(f"{url.host} did not answer in time") from error
        except aiohttp.ClientError as error:
            raise FetchFailed(f"{url.host}: {type(error).__name__}: {error}") from error


def _parse(text: str) -> URL:
    try:
        url = URL(text)
    except (ValueError, TypeError) as error:
        raise FetchRefused(f"not a URL: {error}") from error
    if not url.is_absolute() or not url.host:
        raise FetchRefused("not an absolute URL")
    if url.user is not None or url.password is not None:
        raise FetchRefused("a URL with credentials is refused")
    return url


async def _read(response: aiohttp.ClientResponse, url: URL, limits: Limits) -> Fetched:
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise FetchRefused(f"Content-Encoding {encoding} is refused")
    declared = response.content_type.lower()
    if declared not in limits.content_types:
        raise FetchRefused(f"content type {declared or '(none)'} is not allowed")
    length = response.content_length
    if length is not None and length > limits.max_bytes:
        raise FetchRefused(f"{length} bytes declared, over the {limits.max_bytes}-byte cap")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limits.max_bytes:
            raise FetchRefused(f"more than the {limits.max_bytes}-byte cap")
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data:
        raise FetchRefused("an empty body")
    if not sniff_matches(declared, data):
        raise FetchRefused(f"declared {declared} but the bytes are not {declared}")
    return Fetched(data, declared, hashlib.sha256(data).hexdigest(), url)


def describe(url: str) -> str:
    """A URL for status reasons and logs: scheme and host only (its query is a signature)."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return "(not a URL)"
    return f"{parsed.scheme}://{parsed.host}" if parsed.host else "(not a URL)"
