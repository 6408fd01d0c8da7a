"""Key-value helpers against a real nats-server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NATS

from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.bus.kv import ensure_kv, read
from pbxsms.bus.kvbatch import read_many


@pytest.fixture
async def nc(nats_server: EmbeddedNats) -> AsyncIterator[NATS]:
    client = await nats.connect(nats_server.url)
    yield client
    await client.close()


async def test_read_many_answers_what_read_answers_for_each_key(nc: NATS) -> None:
    bucket = await ensure_kv(nc.jetstream(), "read_many")
    await bucket.put("kept", b"first")
    await bucket.put("kept", b"second")
    await bucket.put("deleted", b"x")
    await bucket.delete("deleted")
    await bucket.put("purged", b"x")
    await bucket.purge("purged")
    await bucket.put("empty", b"")
    many = [f"key-{n}" for n in range(300)]
    for key in many[::7]:
        await bucket.put(key, key.encode())
    keys = ["kept", "deleted", "purged", "empty", "never", *many]
    answers = await read_many(nc, bucket, keys)
    assert answers == {key: await read(bucket, key) for key in keys}
    assert answers["kept"][0] == b"second" and answers["never"] == (None, 0)
    assert await read_many(nc, bucket, []) == {}
