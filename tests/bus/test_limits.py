"""Storage has limits: the stream a size (`[bus] max_bytes`), conversations a TTL
(`[bus] conversation_ttl`), applied to what an older version created too."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import nats
from nats.js.api import DiscardPolicy, KeyValueConfig, StorageType

from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.core.stores.conversations import CONVERSATIONS_BUCKET
from tests.support.gateway import Gateway

StartGateway = Callable[..., Awaitable[Gateway]]


async def test_the_stream_and_conversations_have_limits_by_default(
        start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    js = gw.runtime.js
    stream = (await js.stream_info(gw.runtime.stream)).config
    assert stream.max_bytes is not None and 0 < stream.max_bytes <= 100 * 2**30
    # Full, it refuses new events (503 to the carrier, who retries) rather than
    # dropping undelivered ones.
    assert stream.discard == DiscardPolicy.NEW
    conversations = (await js.stream_info(f"KV_{CONVERSATIONS_BUCKET}")).config
    assert conversations.max_age == 90 * 86400


async def test_limits_follow_the_settings_and_reach_older_buckets(
        start_gateway: StartGateway, nats_server: EmbeddedNats) -> None:
    # As an older version left it: conversations kept for ever.
    nc = await nats.connect(nats_server.url)
    await nc.jetstream().create_key_value(KeyValueConfig(
        bucket=CONVERSATIONS_BUCKET, storage=StorageType.FILE))
    await nc.close()
    gw = await start_gateway(toml='[bus]\nmax_bytes = "64MiB"\nconversation_ttl = "30d"\n')
    js = gw.runtime.js
    assert (await js.stream_info(gw.runtime.stream)).config.max_bytes == 64 * 2**20
    conversations = (await js.stream_info(f"KV_{CONVERSATIONS_BUCKET}")).config
    assert conversations.max_age == 30 * 86400
