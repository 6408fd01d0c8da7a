"""Issue 16 acceptance, crash: `kill -9` of the gateway while the media of inbound MMS are
being fetched (a slow media host); after the restart every picture arrives once, by email
and in the app, and every text too."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from pathlib import Path

import pytest
from aiohttp import ClientSession

from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.sim.clicksend import ClickSendSimulator
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.faults.support import (
    CUSTOMER,
    MAILBOX,
    NUMBER,
    SECRETS,
    SUBACCOUNT,
    GatewayProc,
    fault_env,
    gateway_toml,
)
from tests.helpers import free_port, wait_until
from tests.support.media import png
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.faults

MESSAGES = 6
SLOW = 2.0  # seconds per picture: the kill lands while every message is being fetched


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_kill_9_while_fetching_media_every_picture_arrives_once(
    tmp_path: Path, app: MobileAppSimulator, smtp: SmtpServer,
) -> None:
    async with ClickSendSimulator() as clicksend:
        await crash_while_fetching(tmp_path, app, smtp, clicksend)


async def crash_while_fetching(tmp_path: Path, app: MobileAppSimulator, smtp: SmtpServer,
                               clicksend: ClickSendSimulator) -> None:
    nats = EmbeddedNats(free_port(), tmp_path / "nats")
    await nats.start()
    env = fault_env(app, smtp, CLICKSEND_MEDIA_SIMULATOR=clicksend.base_url,
                      PBXSMS_MEDIA_FETCH_ATTEMPTS="10")
    gateway = GatewayProc(tmp_path / "gw", gateway_toml(), env, nats_url=nats.url)
    (gateway.workdir / ".env").write_text((gateway.workdir / ".env").read_text()
                                          + f"PBXSMS_PUBLIC_URL={gateway.url}\n")
    pictures = {n: [png(10 * n + 1), png(10 * n + 2)] for n in range(MESSAGES)}
    try:
        await asyncio.to_thread(gateway.start)
        hook = f"{gateway.url}/webhook/clicksend/sms?token={SECRETS['CLICKSEND_WEBHOOK_TOKEN']}"
        links = {n: [clicksend.add_media(data, "image/png", delay=SLOW) for data in pics]
                 for n, pics in pictures.items()}
        answers = await asyncio.gather(*(
            clicksend.push_inbound(hook, CUSTOMER, NUMBER, f"crash mms {n}", media=links[n],
                                   subaccount_id=int(SUBACCOUNT))
            for n in range(MESSAGES)))
        assert [a.status for a in answers] == [200] * MESSAGES

        def fetching() -> bool:
            files = [clicksend.mms.file_of(link) for urls in links.values() for link in urls]
            return sum(1 for f in files if f is not None and f.fetches) >= MESSAGES

        await wait_until(fetching, 30, "the media being fetched")
        assert app.pushes == [] and smtp.mailbox.mails == []
        await asyncio.to_thread(gateway.kill, False)
        await asyncio.to_thread(gateway.start)

        expected = Counter(digest(data) for pics in pictures.values() for data in pics)
        await wait_until(lambda: len([p for p in app.pushes if p.type == 7]) >= len(expected)
                         and len(smtp.mailbox.mails) >= MESSAGES, 90,
                         "every picture pushed and every email sent")
        # Whatever is still in flight settles: nothing more may arrive.
        await asyncio.sleep(2 * SLOW)

        texts = Counter(p.content for p in app.pushes if p.type == 1)
        assert texts == Counter(f"crash mms {n}" for n in range(MESSAGES))
        async with ClientSession() as http:
            pushed: Counter[str] = Counter()
            for push in (p for p in app.pushes if p.type == 7):
                async with http.get(push.content) as response:
                    assert response.status == 200
                    pushed[digest(await response.read())] += 1
        assert pushed == expected, "a picture is missing or came twice in the app"
        mails = smtp.mailbox.received_by(MAILBOX)
        assert len(mails) == MESSAGES, "an email is missing or came twice"
        attached = Counter(digest(part.get_content()) for mail in mails
                           for part in mail.iter_attachments())
        assert attached == expected, "a picture is missing or came twice by email"
        # The kill did land mid-fetch: those pictures were fetched again after the restart.
        fetched = [len(f.fetches) for urls in links.values() for link in urls
                   if (f := clicksend.mms.file_of(link)) is not None]
        assert max(fetched) >= 2, fetched
    finally:
        await asyncio.to_thread(gateway.stop)
        await nats.stop()
