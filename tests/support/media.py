"""Pictures for the media tests (small valid files with distinct bytes, and digests), and
the check that an inbound MMS's pictures reached the email and the app."""

from __future__ import annotations

import hashlib
import struct
import zlib

from aiohttp import ClientSession

from pbxsms.core.model.events import State
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.support.delivery import wait_channel
from tests.support.gateway import Gateway
from tests.support.smtp import SmtpServer


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


async def pictures_delivered(gateway: Gateway, message_id: str, pictures: list[bytes],
                             caption: str, smtp: SmtpServer, app: MobileAppSimulator, *,
                             email: str = "desk@example.com",
                             public_url: str | None = None) -> None:
    """The inbound message's `pictures` reached `email` as attachments and the app as
    signed links (under `public_url`, served by the gateway) that download the same
    bytes, after the caption; the media channel says every item was stored."""
    runtime = gateway.runtime
    await wait_channel(runtime, message_id, "email", State.DELIVERED, timeout=20)
    await wait_channel(runtime, message_id, "mobileapp", State.DELIVERED)
    record = await wait_channel(runtime, message_id, "media", State.DELIVERED)
    assert record.channels["media"].reason is None

    (mail,) = smtp.mailbox.received_by(email)
    attached = [part.get_content() for part in mail.iter_attachments()]
    assert [sha256(data) for data in attached] == [sha256(data) for data in pictures]
    assert caption in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    assert [p.content for p in app.pushes if p.type == 1] == [caption], app.pushes
    links = [p.content for p in app.pushes if p.type == 7]
    assert len(links) == len(pictures), links
    base = public_url or gateway.url
    async with ClientSession() as http:
        for link, data in zip(links, pictures, strict=True):
            assert link.startswith(f"{base}/media/"), link
            # Through the gateway's own address, as a TLS proxy at `public_url` would.
            async with http.get(gateway.url + link[len(base):]) as response:
                assert response.status == 200
                assert response.headers["X-Content-Type-Options"] == "nosniff"
                assert sha256(await response.read()) == sha256(data)


async def send_mms(gateway: Gateway, api_token: str, sender: str, to: str,
                   pictures: list[bytes]) -> str:
    """Upload PNG `pictures` and send them with a text through the API; the message id."""
    auth = {"Authorization": f"Bearer {api_token}"}
    async with ClientSession(headers=auth) as http:
        ids = []
        for data in pictures:
            async with http.post(f"{gateway.url}/api/v1/media", data=data,
                                 headers={"Content-Type": "image/png"}) as response:
                assert response.status == 201, await response.text()
                ids.append((await response.json())["id"])
        async with http.post(f"{gateway.url}/api/v1/messages", json={
                "from": sender, "to": to, "body": "Your invoice",
                "media": [{"id": media_id} for media_id in ids]}) as response:
            assert response.status == 202, await response.text()
            message_id: str = (await response.json())["id"]
    return message_id

