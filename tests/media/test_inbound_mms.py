"""Issue 16 acceptance, inbound: a simulated MMS with two pictures is answered at once, the
email carries both pictures, the app gets both as signed links that download the same
bytes; refused media leave the text delivered and the reason on the message."""

from __future__ import annotations

import time

from aiohttp import ClientSession

from pbxsms.core.media.links import sign
from pbxsms.core.model.events import State
from pbxsms.sim.clicksend import ClickSendSimulator
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.media.support import (
    CUSTOMER,
    NUMBER,
    SECRET,
    StartGateway,
    answer_id,
    follow_up,
    start,
    webhook,
)
from tests.support.delivery import wait_channel
from tests.support.media import JPEG, png, sha256
from tests.support.smtp import SmtpServer

SLOW = 1.5  # seconds the media host takes per picture


async def test_two_pictures_reach_the_email_and_the_app(
    start_gateway: StartGateway, clicksend: ClickSendSimulator, app: MobileAppSimulator,
    smtp: SmtpServer,
) -> None:
    gateway = await start(start_gateway, clicksend, app, smtp)
    pictures = [png(1), png(2)]
    links = [clicksend.add_media(data, "image/png", delay=SLOW) for data in pictures]

    began = time.monotonic()
    pushed = await clicksend.push_inbound(webhook(gateway), CUSTOMER, NUMBER,
                                          "Here is the damage", media=links)
    answered_in = time.monotonic() - began
    assert pushed.status == 200, pushed.body
    assert answered_in < SLOW, f"the webhook waited for the media host ({answered_in:.2f}s)"
    message_id = answer_id(pushed.body)

    await wait_channel(gateway.runtime, message_id, "email", State.DELIVERED, timeout=20)
    await wait_channel(gateway.runtime, message_id, "mobileapp", State.DELIVERED)
    record = await wait_channel(gateway.runtime, message_id, "media", State.DELIVERED)
    assert record.channels["media"].reason is None

    (mail,) = smtp.mailbox.received_by("desk@example.com")
    attached = [part.get_content() for part in mail.iter_attachments()]
    assert [sha256(data) for data in attached] == [sha256(data) for data in pictures]
    assert "Here is the damage" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    texts = [p for p in app.pushes if p.type == 1]
    media = [p for p in app.pushes if p.type == 7]
    assert [p.content for p in texts] == ["Here is the damage"]
    assert len(media) == 2
    async with ClientSession() as http:
        for push, data in zip(media, pictures, strict=True):
            assert push.content.startswith(f"{gateway.url}/media/")
            async with http.get(push.content) as response:
                assert response.status == 200
                assert response.headers["Content-Type"] == "image/png"
                assert response.headers["X-Content-Type-Options"] == "nosniff"
                assert sha256(await response.read()) == sha256(data)

        # The links are the only way in: no plain id, no altered or expired link.
        signed = media[0].content.rsplit("/", 1)[1]
        media_id = signed.split(".")[0]
        expired = sign(SECRET, media_id, ttl=-1)
        tampered = signed[:-2] + ("AA" if not signed.endswith("AA") else "BB")
        for path, reason in ((media_id, "not a signed media link"),
                             (expired, "the link has expired"),
                             (tampered, "the link's signature is wrong"),
                             (sign("another-key", media_id, ttl=60),
                              "the link's signature is wrong")):
            async with http.get(f"{gateway.url}/media/{path}") as response:
                assert response.status == 403
                assert (await response.json())["error"] == reason
        async with http.get(f"{gateway.url}/media/") as response:
            assert response.status in (403, 404)
    # Each picture was fetched once, by the consumer.
    assert [len(clicksend.mms.file_of(link).fetches) for link in links] == [1, 1]  # type: ignore[union-attr]


async def test_refused_media_leave_the_text_delivered_and_the_reason_on_the_message(
    start_gateway: StartGateway, clicksend: ClickSendSimulator, app: MobileAppSimulator,
    smtp: SmtpServer,
) -> None:
    gateway = await start(start_gateway, clicksend, app, smtp, PBXSMS_MEDIA_MAX_BYTES="5000",
                          CLICKSEND_MEDIA_HOSTS='["localhost"]')
    big = JPEG * 20
    links = [
        clicksend.add_media(JPEG, redirect_to="https://127.0.0.1/a.jpg"),
        clicksend.add_media(b"<!doctype html><script>x()</script>", "image/jpeg"),
        clicksend.add_media(big, "image/jpeg", chunked=True),
        "https://localhost/a.jpg",  # an allow-listed name that resolves to loopback
    ]
    # An IP literal in an explicit media field (ClickSend's JSON webhook type).
    payload = {"from": CUSTOMER, "to": NUMBER, "message_id": "B1A2C3D4-0000-4000-8000-0000",
               "body": "Photos attached\n" + "\n".join(links),
               "_media_file_url": "https://10.0.0.1/a.jpg"}
    async with ClientSession() as http, http.post(webhook(gateway), json=payload) as response:
        assert response.status == 200, await response.text()
        message_id = answer_id(await response.text())

    record = await wait_channel(gateway.runtime, message_id, "media", State.FAILED, timeout=20)
    await wait_channel(gateway.runtime, message_id, "email", State.DELIVERED)
    await wait_channel(gateway.runtime, message_id, "mobileapp", State.DELIVERED)
    complete = await follow_up(gateway.runtime, message_id)
    assert complete.media == []
    reasons = sorted(refusal.reason for refusal in complete.media_refused)
    assert reasons == sorted([
        "the host is an IP address (10.0.0.1): 10.0.0.1 is a private address",
        "the host is an IP address (127.0.0.1): 127.0.0.1 is a loopback address",
        "declared image/jpeg but the bytes are not image/jpeg",
        "more than the 5000-byte cap",
        "localhost resolves to 127.0.0.1 is a loopback address",
    ])
    reason = record.channels["media"].reason or ""
    assert all(r in reason for r in reasons), reason
    assert complete.body == "Photos attached"

    assert [p.content for p in app.pushes] == [
        "Photos attached\n(5 attachments could not be fetched)"]
    (mail,) = smtp.mailbox.received_by("desk@example.com")
    assert list(mail.iter_attachments()) == []
    assert "(5 attachments could not be fetched)" in \
        mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def test_pictures_past_the_email_size_limit_are_links(
    start_gateway: StartGateway, clicksend: ClickSendSimulator, app: MobileAppSimulator,
    smtp: SmtpServer,
) -> None:
    small, large = png(3, size=8), png(4, size=64)
    gateway = await start(start_gateway, clicksend, app, smtp,
                          PBXSMS_SMTP_ATTACHMENTS_MAX_BYTES=str(len(small) + 10))
    links = [clicksend.add_media(data, "image/png") for data in (small, large)]
    pushed = await clicksend.push_inbound(webhook(gateway), CUSTOMER, NUMBER, "", media=links)
    assert pushed.status == 200, pushed.body
    message_id = answer_id(pushed.body)
    await wait_channel(gateway.runtime, message_id, "email", State.DELIVERED, timeout=20)

    (mail,) = smtp.mailbox.received_by("desk@example.com")
    assert [sha256(p.get_content()) for p in mail.iter_attachments()] == [sha256(small)]
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    (link,) = [line for line in text.splitlines() if line.startswith(f"{gateway.url}/media/")]
    async with ClientSession() as http, http.get(link) as response:
        assert response.status == 200
        assert sha256(await response.read()) == sha256(large)
    # No caption: the app gets the two pictures only.
    await wait_channel(gateway.runtime, message_id, "mobileapp", State.DELIVERED)
    assert [p.type for p in app.pushes] == [7, 7]
