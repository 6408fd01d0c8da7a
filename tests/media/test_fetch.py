"""The guarded fetcher: each hostile URL refused with its reason, a good one fetched."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest

from pbxsms.core.media.fetch import FetchFailed, FetchPolicy, FetchRefused, Limits, MediaFetcher
from pbxsms.core.media.types import ALLOWED_TYPES
from tests.media.media_host import MediaHost
from tests.support.media import JPEG, sha256

LIMITS = Limits(max_bytes=50_000, content_types=ALLOWED_TYPES, connect_timeout=1.0)


@pytest.fixture
async def host() -> AsyncIterator[MediaHost]:
    server = MediaHost()
    await server.start()
    yield server
    await server.stop()


def simulator(host: MediaHost, *hosts: str) -> FetchPolicy:
    return FetchPolicy(hosts=hosts, simulator=host.origin)


async def refused(url: str, policy: FetchPolicy, fetcher: MediaFetcher | None = None,
                  limits: Limits = LIMITS) -> str:
    with pytest.raises(FetchRefused) as caught:
        await (fetcher or MediaFetcher()).fetch(url, policy, limits)
    return caught.value.reason


async def test_a_picture_from_the_simulator_origin_is_fetched(host: MediaHost) -> None:
    fetched = await MediaFetcher().fetch(host.url("/pic/a.jpg"), simulator(host), LIMITS)
    assert (fetched.content_type, fetched.size, fetched.sha256) == (
        "image/jpeg", len(JPEG), sha256(JPEG))


async def test_a_redirect_to_127_0_0_1_is_refused(host: MediaHost) -> None:
    to = f"https://127.0.0.1:{host.port}/pic/a.jpg"
    reason = await refused(host.url(f"/redirect?to={to}"), simulator(host))
    assert reason == "the host is an IP address (127.0.0.1): 127.0.0.1 is a loopback address"
    # Over plain http to another loopback port: the simulator's exemption is one origin.
    reason = await refused(host.url("/redirect?to=http://127.0.0.1:1/x.jpg"), simulator(host))
    assert reason == "http:// is refused: only https"
    assert host.hits == ["/redirect", "/redirect"]


async def test_a_host_resolving_to_a_private_address_is_refused() -> None:
    asked: list[str] = []

    async def resolver(name: str, port: int) -> Sequence[str]:
        asked.append(name)
        return ["93.184.216.34", "10.1.2.3"]

    policy = FetchPolicy(hosts=(".example.com",))
    reason = await refused("https://media.example.com/a.jpg", policy, MediaFetcher(resolver))
    assert reason == "media.example.com resolves to 10.1.2.3 is a private address"
    assert asked == ["media.example.com"]


@pytest.mark.parametrize(("url", "reason"), [
    ("https://8.8.8.8/a.jpg", "the host is an IP address (8.8.8.8), not a name on the "
                              "allow-list"),
    ("https://169.254.169.254/latest/meta-data", "the host is an IP address "
     "(169.254.169.254): 169.254.169.254 is a cloud metadata address"),
    ("https://[::ffff:127.0.0.1]/a.jpg", "the host is an IP address (::ffff:7f00:1): "
                                         "127.0.0.1 is a loopback address"),
    ("https://10.0.0.1/a.jpg", "the host is an IP address (10.0.0.1): 10.0.0.1 is a "
                               "private address"),
])
async def test_an_ip_literal_is_refused(url: str, reason: str) -> None:
    assert await refused(url, FetchPolicy(hosts=(".example.com",))) == reason


@pytest.mark.parametrize(("url", "reason"), [
    ("http://media.example.com/a.jpg", "http:// is refused: only https"),
    ("file:///etc/passwd", "not an absolute URL"),
    ("https://user:pw@media.example.com/a.jpg", "a URL with credentials is refused"),
    ("https://evil.example.org/a.jpg", "host evil.example.org is not on the allow-list"),
])
async def test_other_urls_are_refused_before_any_lookup(url: str, reason: str) -> None:
    async def resolver(name: str, port: int) -> Sequence[str]:
        raise AssertionError("no lookup for a refused URL")

    policy = FetchPolicy(hosts=(".example.com",))
    assert await refused(url, policy, MediaFetcher(resolver)) == reason


async def test_a_chunked_body_over_the_cap_is_refused(host: MediaHost) -> None:
    reason = await refused(host.url("/endless"), simulator(host))
    assert reason == "more than the 50000-byte cap"


async def test_html_declared_as_image_jpeg_is_refused(host: MediaHost) -> None:
    reason = await refused(host.url("/html"), simulator(host))
    assert reason == "declared image/jpeg but the bytes are not image/jpeg"


async def test_a_type_off_the_allow_list_is_refused(host: MediaHost) -> None:
    host.files["page.html"] = ("text/html", b"<html></html>")
    host.files["logo.svg"] = ("image/svg+xml", b"<svg/>")
    assert await refused(host.url("/pic/page.html"), simulator(host)) == \
        "content type text/html is not allowed"
    assert await refused(host.url("/pic/logo.svg"), simulator(host)) == \
        "content type image/svg+xml is not allowed"


async def test_the_checked_address_is_the_one_connected_to() -> None:
    """DNS rebinding: a second lookup would say 127.0.0.1; there is no second lookup."""
    answers = [["192.88.99.1"], ["127.0.0.1"]]  # global (anycast), then loopback
    asked: list[str] = []

    async def resolver(name: str, port: int) -> Sequence[str]:
        asked.append(name)
        return answers[len(asked) - 1]

    fetcher = MediaFetcher(resolver)
    limits = Limits(max_bytes=1000, content_types=ALLOWED_TYPES, connect_timeout=0.5,
                    total_timeout=2.0)
    with pytest.raises((FetchFailed, FetchRefused)):
        await fetcher.fetch("https://media.example.com:1/a.jpg",
                            FetchPolicy(hosts=("media.example.com",)), limits)
    assert asked == ["media.example.com"]
