"""Status freshness: how long after ClickSend accepted a message `GET /api/v1/messages/<id>`
still shows it as not accepted, during an outbound burst.

A burst of `count` send requests goes through the gateway to the ClickSend simulator (as
in the outbound measurement, batches of 1000); every `count / SAMPLES`-th is followed.
Once the simulator has accepted a followed message (it notes when), the API is asked for it
until it shows `accepted` or later; its lag is the time of that answer minus the
simulator's. Only accepted messages are asked for, a few at a time, so the asking adds
little to the burst.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.load import OURS, percentile
from bench.procs import API_TOKEN, Gateway, Sinks

SAMPLES = 100
# Followed messages asked for at once, and how often the asking goes round.
WINDOW = 16
ROUND = 0.025
# What the API may show once ClickSend accepted the message.
SHOWN = frozenset({"accepted", "sent", "delivered", "failed"})
# How long after ClickSend accepted the last message the API may still be behind.
SETTLE = 60.0


def freshness(workdir: Path, sinks: Sinks, count: int) -> dict[str, Any]:
    sinks.reset()
    gateway = Gateway(workdir / "freshness", sinks, ["clicksend"],
                      "max_batch = 1000\nrequests_per_second = 1000\n")
    try:
        cpu = gateway.watch_cpu(sinks=sinks.process.pid)
        every = max(1, count // SAMPLES)
        publisher = subprocess.Popen(
            [sys.executable, "-m", "bench.publisher", gateway.nats_url, str(count), OURS,
             str(every)], stdout=subprocess.PIPE, text=True)
        assert publisher.stdout is not None
        sample: dict[str, str] = json.loads(publisher.stdout.readline())["sample"]
        result = asyncio.run(_follow(gateway.url, sinks.urls["control"], sample, count))
        publisher.wait(120)
        cores = cpu.stop()
        gateway.sample_rss()
    finally:
        gateway.close()
    return {**result, "messages": count, "peak_rss_mb": gateway.peak_rss_mb, **cores}


async def _follow(api: str, control: str, sample: dict[str, str],
                  count: int) -> dict[str, Any]:
    """Ask the API for each followed message once ClickSend accepted it, until it shows."""
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    seen: dict[str, float] = {}
    states: dict[str, str] = {}
    asked = 0
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(f"{control}/watch", json=list(sample)) as answer:
            answer.raise_for_status()

        async def ask(tag: str) -> None:
            async with session.get(f"{api}/api/v1/messages/{sample[tag]}") as answer:
                body = await answer.json() if answer.status == 200 else {}
                now = time.time()
            if body.get("state") in SHOWN:
                seen[tag] = now
                states[tag] = body["state"]

        accepted: dict[str, float] = {}
        # Until SETTLE after ClickSend took them all, or long after it should have.
        deadline, burst_over = time.time() + 120 + count / 100, False
        while len(seen) < len(sample) and time.time() < deadline:
            began = time.monotonic()
            async with session.get(f"{control}/accepted") as answer:
                accepted = await answer.json()
            async with session.get(f"{control}/counts") as answer:
                done = (await answer.json())["clicksend"]["accepted"] >= count
            if done and not burst_over:
                deadline, burst_over = time.time() + SETTLE, True
            waiting = sorted((t for t in accepted if t not in seen), key=accepted.__getitem__)
            batch = waiting[:WINDOW]
            asked += len(batch)
            await asyncio.gather(*(ask(tag) for tag in batch))
            await asyncio.sleep(max(0.0, ROUND - (time.monotonic() - began)))
        async with session.get(f"{control}/stats") as answer:
            clicksend = (await answer.json())["clicksend"]
    lags = [seen[tag] - accepted[tag] for tag in seen if tag in accepted]
    elapsed = clicksend["last"] - clicksend["first"]
    return {"samples": len(sample), "seen": len(lags), "asked": asked,
            "failed": sum(state == "failed" for state in states.values()),
            "accepted": clicksend["accepted"],
            "rps": clicksend["accepted"] / elapsed if elapsed > 0 else 0.0,
            "lag_max_ms": max(lags, default=float("nan")) * 1000,
            "lag_p50_ms": percentile(lags, 50) * 1000,
            "lag_p99_ms": percentile(lags, 99) * 1000}
