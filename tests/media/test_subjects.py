"""Who reads what: an ordinary text never reaches `fetch-media` or `optout`, an MMS and an
opt-out keyword reach the consumer that acts on them, the channels deliver each once; and
an upgrade from the consumers' old filters (every text) loses nothing and repeats nothing."""

from __future__ import annotations

import json

import nats
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError

from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.core.inbound.subjects import KEYWORD_SUBJECTS, MMS_SUBJECTS
from pbxsms.core.media.inbound import CONSUMER as FETCH_MEDIA
from pbxsms.core.model.events import InboundMessage, State
from pbxsms.core.optout.plugin import CONSUMER as OPTOUT
from pbxsms.core.serve.runtime import Runtime
from pbxsms.sim.clicksend import ClickSendSimulator
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.helpers import wait_until
from tests.media.support import CUSTOMER, NUMBER, StartGateway, answer_id, start, webhook
from tests.support.delivery import routed_inbound, wait_channel
from tests.support.media import png
from tests.support.smtp import SmtpServer

# The filters these consumers had before they read only their own subjects.
OLD_FILTERS = {OPTOUT: "sms.inbound.>", FETCH_MEDIA: "sms.inbound.*"}


async def delivered_to(runtime: Runtime, consumer: str) -> int:
    """How many deliveries the server made to `consumer` (redeliveries included)."""
    info = await runtime.js.consumer_info(runtime.stream, consumer)
    return int(info.delivered.consumer_seq)


async def ids_on(runtime: Runtime, subject: str) -> list[str]:
    """The ids of the events stored on `subject` (wildcards allowed), oldest first."""
    ids: list[str] = []
    seq = 1
    while True:
        try:
            msg = await runtime.js.get_msg(runtime.stream, seq, subject=subject, next=True)
        except NotFoundError:
            return ids
        ids.append(json.loads(msg.data or b"")["id"])
        seq = (msg.seq or seq) + 1


def filters(info: ConsumerInfo) -> tuple[str, ...]:
    config = info.config
    return tuple(config.filter_subjects or [config.filter_subject or ">"])


async def test_each_consumer_is_delivered_only_what_it_acts_on(
    start_gateway: StartGateway, clicksend: ClickSendSimulator, app: MobileAppSimulator,
    smtp: SmtpServer,
) -> None:
    gateway = await start(start_gateway, clicksend, app, smtp)
    runtime = gateway.runtime
    sent = {"text": ("Is the shop open?", []), "keyword": (" stop ", []),
            "mms": ("Here it is", [clicksend.add_media(png(1), "image/png")]),
            "keyword mms": ("START", [clicksend.add_media(png(2), "image/png")])}
    ids: dict[str, str] = {}
    for kind, (body, media) in sent.items():
        pushed = await clicksend.push_inbound(webhook(gateway), CUSTOMER, NUMBER, body,
                                              media=media)
        assert pushed.status == 200, pushed.body
        ids[kind] = answer_id(pushed.body)
    for message_id in ids.values():
        for channel in ("email", "mobileapp"):
            await wait_channel(runtime, message_id, channel, State.DELIVERED, timeout=20)
    for kind in ("mms", "keyword mms"):
        await wait_channel(runtime, ids[kind], "media", State.DELIVERED)

    # Each message as received went to the subject of its kind.
    assert await ids_on(runtime, "sms.inbound.clicksend") == [ids["text"]]
    assert await ids_on(runtime, "sms.inbound.clicksend.keyword") == [ids["keyword"]]
    assert await ids_on(runtime, "sms.inbound.clicksend.mms") == [ids["mms"]]
    assert await ids_on(runtime, "sms.inbound.clicksend.keyword.mms") == [ids["keyword mms"]]
    # Each consumer was delivered what it acts on, once, and nothing else: not the plain
    # text, not the other's kind, not the `.media` follow-ups.
    assert await delivered_to(runtime, OPTOUT) == 2
    assert await delivered_to(runtime, FETCH_MEDIA) == 2
    assert await ids_on(runtime, "sms.optout") == [ids["keyword"], ids["keyword mms"]]
    # The channels delivered every message once: the MMS after its media were fetched.
    texts = sorted(push.content for push in app.pushes if push.type == 1)
    assert texts == sorted(body for body, _ in sent.values())
    assert len([push for push in app.pushes if push.type == 7]) == 2
    assert len(smtp.mailbox.received_by("desk@example.com")) == 4


async def test_an_upgrade_reads_what_the_old_filters_left_once_then_narrows(
    start_gateway: StartGateway, nats_server: EmbeddedNats, clicksend: ClickSendSimulator,
    app: MobileAppSimulator, smtp: SmtpServer,
) -> None:
    first = await start(start_gateway, clicksend, app, smtp)
    await first.server.stop()
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    try:
        # The deployment before the upgrade: both consumers on every text.
        for name, old in OLD_FILTERS.items():
            config = (await js.consumer_info("SMS", name)).config
            await js.add_consumer("SMS", config.evolve(filter_subject=old,
                                                       filter_subjects=None))
        # What its webhook stored, every message on sms.inbound.<provider>: a keyword its
        # consumers had handled, and a keyword and an MMS they had not reached yet.
        handled = routed_inbound("STOP")
        keyword = routed_inbound("START")
        mms = routed_inbound("Here it is")
        mms.media_urls = [clicksend.add_media(png(3), "image/png")]
        for message in (handled, keyword, mms):
            await js.publish("sms.inbound.clicksend", message.to_json(), headers={
                "Nats-Msg-Id": f"clicksend:{message.provider_message_id}"})
        for name in OLD_FILTERS:
            sub = await js.pull_subscribe_bind(name, "SMS")
            (msg,) = await sub.fetch(1, timeout=5)
            assert InboundMessage.model_validate_json(msg.data).id == handled.id
            await msg.ack_sync()
            await sub.unsubscribe()
    finally:
        await nc.close()

    gateway = await start(start_gateway, clicksend, app, smtp)
    runtime = gateway.runtime
    await wait_channel(runtime, mms.id, "media", State.DELIVERED, timeout=20)
    for message in (handled, keyword, mms):
        for channel in ("email", "mobileapp"):
            await wait_channel(runtime, message.id, channel, State.DELIVERED, timeout=20)

    async def narrowed() -> bool:
        return (filters(await runtime.js.consumer_info(runtime.stream, OPTOUT))
                == KEYWORD_SUBJECTS
                and filters(await runtime.js.consumer_info(runtime.stream, FETCH_MEDIA))
                == MMS_SUBJECTS)

    await wait_until(narrowed, timeout=15, message="both consumers on their own subjects")
    # The keyword left behind was recorded, the one handled before was not again.
    assert await ids_on(runtime, "sms.optout") == [keyword.id]
    assert await ids_on(runtime, "sms.inbound.clicksend.media") == [mms.id]

    # After the upgrade an ordinary text reaches neither.
    before = {name: await delivered_to(runtime, name) for name in OLD_FILTERS}
    pushed = await clicksend.push_inbound(webhook(gateway), CUSTOMER, NUMBER, "Thanks!")
    assert pushed.status == 200, pushed.body
    await wait_channel(runtime, answer_id(pushed.body), "email", State.DELIVERED)
    assert {name: await delivered_to(runtime, name) for name in OLD_FILTERS} == before

    # Every message reached the app and the mailbox once across the upgrade.
    texts = sorted(push.content for push in app.pushes if push.type == 1)
    assert texts == sorted(["STOP", "START", "Here it is", "Thanks!"])
    assert len([push for push in app.pushes if push.type == 7]) == 1
    assert len(smtp.mailbox.received_by("desk@example.com")) == 4
