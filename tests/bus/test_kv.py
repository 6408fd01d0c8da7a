"""Key-value buckets through the Publisher (`bus.kv.Bucket`) against a real nats-server:
they must answer what nats-py's KeyValue answers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.bus.kv import Bucket, ensure_kv, modify
from pbxsms.bus.publish import BusError, Publisher


@pytest.fixture
async def nc(nats_server: EmbeddedNats) -> AsyncIterator[NATS]:
    client = await nats.connect(nats_server.url)
    yield client
    await client.close()


async def bucket(nc: NATS, name: str) -> Bucket:
    publisher = Publisher(nc)
    await publisher.start()
    return Bucket(await ensure_kv(nc.jetstream(), name), publisher, name, timeout=2.0)


async def read(kv: KeyValue, key: str) -> tuple[bytes | None, int]:
    """nats-py's answer, the reference: (None, 0) for a missing or deleted key."""
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None, 0
    return entry.value, entry.revision or 0


async def test_reads_answer_what_nats_py_answers_for_each_key(nc: NATS) -> None:
    ours = await bucket(nc, "reads")
    theirs = ours.kv
    await theirs.put("kept", b"first")
    await theirs.put("kept", b"second")
    await theirs.put("deleted", b"x")
    await theirs.delete("deleted")
    await theirs.put("purged", b"x")
    await theirs.purge("purged")
    await theirs.put("empty", b"")
    many = [f"key-{n}" for n in range(300)]
    for key in many[::7]:
        await theirs.put(key, key.encode())
    keys = ["kept", "deleted", "purged", "empty", "never", *many]
    expected = {key: await read(theirs, key) for key in keys}
    assert await ours.get_many(keys) == expected
    assert {key: await ours.get(key) for key in keys} == expected
    assert expected["kept"][0] == b"second" and expected["never"] == (None, 0)
    assert await ours.get_many([]) == {}


async def test_writes_are_seen_by_nats_py_and_compare_and_set_holds(nc: NATS) -> None:
    ours = await bucket(nc, "writes")
    first = await ours.put("k", b"one")
    assert (await ours.kv.get("k")).value == b"one"
    second = await ours.update("k", b"two", last=first)
    assert second > first
    with pytest.raises(KeyWrongLastSequenceError):
        await ours.update("k", b"lost", last=first)  # another writer came first
    with pytest.raises(KeyWrongLastSequenceError):
        await ours.update("k", b"lost", last=0)  # "absent" is checked too
    assert await ours.get("k") == (b"two", second)
    await ours.delete("k")
    assert await ours.get("k") == (None, 0)
    assert await read(ours.kv, "k") == (None, 0)
    # modify's read-change-write goes through the same calls, a deleted key included.
    assert (await modify(ours, "k", lambda old: (old or b"") + b"!"))[0] == b"!"
    assert (await modify(ours, "new", lambda old: b"x", known=(None, 0)))[0] == b"x"


async def test_a_read_of_a_missing_bucket_is_a_bus_error(nc: NATS) -> None:
    ours = await bucket(nc, "present")
    absent = Bucket(ours.kv, ours._publisher, "absent", timeout=2.0)
    with pytest.raises(BusError):
        await absent.get("k")
