"""The delivery ledger in the message's status record: written with the channel's status,
never repeating a settled delivery, forgotten for a forced redelivery; the older versions'
bucket read for the messages it may hold, and deleted once empty."""

from __future__ import annotations

import logging
from datetime import timedelta

import nats
import pytest
from nats.js.api import KeyValueConfig, StorageType

from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.core.inbound.ledger import LEGACY_BUCKET, Ledger, ledger_key
from pbxsms.core.model.events import State, utcnow
from pbxsms.core.stores.status import Settled, StatusRecord
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.support.counting import calls_of
from tests.support.delivery import (
    bus_toml,
    consumers_idle,
    delivery_env,
    inject_inbound,
    routed_inbound,
    wait_channel,
)
from tests.support.gateway import StartGateway
from tests.support.smtp import SmtpServer


async def test_settled_deliveries_are_kept_in_the_record_and_never_repeated(
        start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer) -> None:
    gateway = await start_gateway(toml=bus_toml(), env=delivery_env(app, smtp))
    runtime = gateway.runtime
    message = routed_inbound("Two channels, one record",
                             emails=("desk@example.com", "boss@example.com"))
    await inject_inbound(runtime, message)
    await wait_channel(runtime, message.id, "mobileapp", State.DELIVERED)
    await wait_channel(runtime, message.id, "email", State.DELIVERED)
    value, _ = await runtime.status.messages.get(message.id)
    assert value is not None
    settled = StatusRecord.model_validate_json(value).settled
    (push,) = app.pushes
    assert set(settled) == {ledger_key("mobileapp", message.id),
                            ledger_key("email", message.id, "desk@example.com"),
                            ledger_key("email", message.id, "boss@example.com")}
    assert settled[ledger_key("mobileapp", message.id)].provider_message_id == push.messageid
    # No bucket of its own any more.
    with pytest.raises(nats.js.errors.NotFoundError):
        await runtime.js.stream_info(f"KV_{LEGACY_BUCKET}")

    # A replay (past the duplicate window) reaches nobody again.
    await inject_inbound(runtime, message, msg_id=f"replay:{message.id}")
    await consumers_idle(runtime, "deliver-mobileapp", "deliver-email")
    assert len(app.pushes) == 1 and len(smtp.mailbox.mails) == 1

    # The operator's forced redelivery forgets them (one compare-and-set): then it does.
    assert await Ledger(runtime).forget(message.id) == 3
    assert await Ledger(runtime).get("mobileapp", message.id) is None
    record = await runtime.status.get(message.id)
    assert record is not None and record.settled == {}
    assert record.channels["mobileapp"].state == State.DELIVERED  # the status stays
    await inject_inbound(runtime, message, msg_id=f"forced:{message.id}")
    await consumers_idle(runtime, "deliver-mobileapp", "deliver-email")
    assert len(app.pushes) == 2 and len(smtp.mailbox.mails) == 2


async def _old_ledger(url: str, entries: dict[str, Settled]) -> None:
    """What an older version left: its ledger bucket (created even when empty)."""
    client = await nats.connect(url)
    try:
        old = await client.jetstream().create_key_value(KeyValueConfig(
            bucket=LEGACY_BUCKET, storage=StorageType.FILE, direct=True))
        for key, settled in entries.items():
            await old.put(key, settled.model_dump_json().encode())
    finally:
        await client.close()


async def test_the_old_ledger_bucket_is_read_for_messages_from_before_the_upgrade(
        start_gateway: StartGateway, nats_server: EmbeddedNats, app: MobileAppSimulator,
        smtp: SmtpServer) -> None:
    before = routed_inbound("Delivered by the old version", emails=())
    before.received_at = utcnow() - timedelta(minutes=5)
    await _old_ledger(nats_server.url, {ledger_key("mobileapp", before.id): Settled(
        state="delivered", attempt=1, provider_message_id="APP-OLD")})
    gateway = await start_gateway(toml=bus_toml(), env=delivery_env(app, smtp))
    runtime = gateway.runtime
    assert runtime.legacy_ledger is not None
    # Redelivered after the upgrade (a crash, a replay): the old entry keeps it from the
    # person, and the status written now carries the entry into the record.
    await inject_inbound(runtime, before)
    status = await wait_channel(runtime, before.id, "mobileapp", State.DELIVERED)
    assert app.pushes == []
    assert status.history[-1].provider_message_id == "APP-OLD"
    value, _ = await runtime.status.messages.get(before.id)
    assert value is not None and ledger_key("mobileapp", before.id) in (
        StatusRecord.model_validate_json(value).settled)

    # A message received since is not looked up there: the old version never saw it.
    after = routed_inbound("New since the upgrade", emails=())
    with calls_of(runtime.legacy_ledger.bucket, "get_many") as asked:
        await inject_inbound(runtime, after)
        await wait_channel(runtime, after.id, "mobileapp", State.DELIVERED)
    assert len(app.pushes) == 1 and asked == []
    # A forced redelivery of the old message forgets its old entry too.
    assert await Ledger(runtime).forget(before.id) == 2
    assert await Ledger(runtime).get("mobileapp", before.id,
                                     received_at=before.received_at) is None


async def test_an_empty_old_ledger_bucket_is_deleted_at_start(
        start_gateway: StartGateway, nats_server: EmbeddedNats,
        caplog: pytest.LogCaptureFixture) -> None:
    await _old_ledger(nats_server.url, {})
    with caplog.at_level(logging.INFO, logger="pbxsms.deliveries"):
        gateway = await start_gateway()
    assert gateway.runtime.legacy_ledger is None
    assert f"bucket {LEGACY_BUCKET} deleted" in caplog.text
    with pytest.raises(nats.js.errors.NotFoundError):
        await gateway.runtime.js.stream_info(f"KV_{LEGACY_BUCKET}")
