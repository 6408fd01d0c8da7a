"""Listing messages by state with many stored: what one page costs (`GET /api/v1/messages`).

The status store and its state index are filled directly (the records as the fold writes
them), mostly `delivered` with one `unroutable` in a thousand, then pages are read the way
the API reads them: the first page, the pages after it, the first page of the rare state
and a page from a time. Each figure is the median of several reads.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import nats

from bench.procs import free_port
from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.bus.kv import Bucket, ensure_kv
from pbxsms.bus.publish import Publisher
from pbxsms.core.model.events import State, new_id, utcnow
from pbxsms.core.stores.states import StateIndex
from pbxsms.core.stores.status import (
    MESSAGES_BUCKET,
    PROVIDER_IDS_BUCKET,
    ChannelStatus,
    StatusRecord,
    StatusStore,
)

IN_FLIGHT = 4000  # writes in flight while filling
RARE = 1000  # one message in this many is unroutable


def listing(workdir: Path, stored: int, limit: int = 100, reads: int = 5) -> dict[str, Any]:
    return asyncio.run(_listing(workdir / "listing", stored, limit, reads))


async def _listing(folder: Path, stored: int, limit: int, reads: int) -> dict[str, Any]:
    server = EmbeddedNats(free_port(), folder)
    await server.start()
    nc = await nats.connect(server.url)
    try:
        js = nc.jetstream()
        publisher = Publisher(nc)
        await publisher.start()
        async def bucket(name: str) -> Bucket:
            return Bucket(await ensure_kv(js, name), publisher, name, timeout=30.0)

        messages, provider_ids = [await bucket(name)
                                  for name in (MESSAGES_BUCKET, PROVIDER_IDS_BUCKET)]
        states = await StateIndex.open(bucket)
        store = StatusStore(messages, provider_ids, states)
        began = time.monotonic()
        middle = await _fill(store, stored)
        filled = time.monotonic() - began

        async def timed(state: State, **page: Any) -> tuple[float, int]:
            times, count = [], 0
            for _ in range(reads):
                start = time.perf_counter()
                count = len((await store.in_state(state, limit, **page)).records)
                times.append(1000 * (time.perf_counter() - start))
            return statistics.median(times), count

        first_ms, first_n = await timed(State.DELIVERED)
        pages_ms, after = [], 0
        for _ in range(10):
            start = time.perf_counter()
            page = await store.in_state(State.DELIVERED, limit, after)
            pages_ms.append(1000 * (time.perf_counter() - start))
            after = page.next_after or 0
        rare_ms, rare_n = await timed(State.UNROUTABLE)
        since_ms, since_n = await timed(State.DELIVERED, since=middle)
        return {"stored": stored, "limit": limit, "fill_seconds": round(filled, 1),
                "first_page_ms": round(first_ms, 1), "first_page_records": first_n,
                "next_pages_ms": round(statistics.median(pages_ms), 1),
                "rare_state_ms": round(rare_ms, 1), "rare_state_records": rare_n,
                "since_page_ms": round(since_ms, 1), "since_page_records": since_n}
    finally:
        await nc.drain()
        await server.stop()


async def _fill(store: StatusStore, stored: int) -> Any:
    """`stored` records and their index entries; the time half of them were written."""
    assert store.states is not None
    middle = utcnow()
    pending: list[asyncio.Future[Any]] = []
    for n in range(stored):
        if n == stored // 2:
            await asyncio.gather(*pending)
            pending.clear()
            middle = utcnow()
        state = State.UNROUTABLE if n % RARE == 0 else State.DELIVERED
        record = StatusRecord(id=new_id(), direction="inbound", state=state, channels={
            "email": ChannelStatus(state=state, at=utcnow())})
        pending.append(await store.messages.send_put(record.id,
                                                     record.model_dump_json().encode()))
        pending.append(await store.states.buckets[state].send_put(
            record.id, record.updated_at.isoformat().encode()))
        if len(pending) >= IN_FLIGHT:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    return middle
