"""The measurements; each starts its own gateway so one cannot slow the next."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.load import percentile, run_closed, run_open
from bench.procs import Bare, CpuWatch, Gateway, Sinks, children
from bench.sinks import TELNYX_OURS, TWILIO_OURS

CONNECTIONS = 32


def ingest(workdir: Path, sinks: Sinks, seconds: float, rounds: int = 3) -> dict[str, Any]:
    """Webhooks stored on JetStream vs. a bare aiohttp handler, the same load.

    A second yardstick, the bare handler plus one JetStream publish per webhook (nats-py,
    as documented), shows what storing alone costs. All three run at once and take turns
    (`rounds` each, in rotation), and each side's median round counts: the machine is
    shared, and turns spread its noise over all of them.
    """
    # Only ClickSend: ingest is the webhook up to the PubAck, not the deliveries after it.
    gateway = Gateway(workdir / "ingest", sinks, ["clicksend"])
    bare = stored = None
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "stored": [], "gateway": []}
    try:
        bare, stored = Bare(), Bare(gateway.nats_url)
        sides: dict[str, Bare | Gateway] = {"bare": bare, "stored": stored, "gateway": gateway}
        nats = children(gateway.process.pid)[0]  # the stored yardstick uses it too
        for side in sides.values():
            run_closed(side.webhook, CONNECTIONS, 1)  # warm-up
        for _ in range(rounds):
            for name, side in sides.items():
                cpu = CpuWatch(side.process.pid, nats=nats)
                runs[name].append(run_closed(side.webhook, CONNECTIONS, seconds / rounds))
                runs[name][-1].update(cpu.stop())
    finally:
        for server in (bare, stored, gateway):
            if server is not None:
                server.close()
    yardstick, floor, measured = (_median(runs[name]) for name in runs)
    return {"bare": yardstick, "stored": floor, "gateway": measured,
            "ratio": measured["rps"] / yardstick["rps"],
            "stored_ratio": floor["rps"] / yardstick["rps"],
            "peak_rss_mb": gateway.peak_rss_mb,
            "rounds": {f"{name}_rps": [round(r["rps"]) for r in runs[name]] for name in runs}}


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput."""
    return sorted(runs, key=lambda run: run["rps"])[len(runs) // 2]


def end_to_end(workdir: Path, sinks: Sinks, rate: float, seconds: float) -> dict[str, Any]:
    """Webhooks at a fixed rate until the app push and the email both arrived."""
    sinks.reset()
    gateway = Gateway(workdir / f"end-to-end-{rate:.0f}-{time.monotonic_ns()}", sinks,
                      ["clicksend", "mobileapp", "email"])
    try:
        run_open(gateway.webhook, 20, 1)  # warm-up: connections, first KV keys
        settle(sinks, lambda s: s["app"] >= 20 and s["email"] >= 20, 30)
        sinks.reset()
        cpu = gateway.watch_cpu(sinks=sinks.process.pid)
        load = run_open(gateway.webhook, rate, seconds)
        sent: dict[str, float] = load["sent"]
        stats = settle(sinks, lambda s: s["app"] >= len(sent) and s["email"] >= len(sent),
                        30)
        cores = cpu.stop()
        gateway.sample_rss()
    finally:
        gateway.close()
    done = {tag: max(stats["app"][tag], stats["email"][tag]) for tag in sent
            if tag in stats["app"] and tag in stats["email"]}
    latencies = [done[tag] - sent[tag] for tag in done]
    first, last = min(sent.values()), max(done.values(), default=0.0)
    return {"offered_rps": load["offered_rps"], "sent": len(sent), "delivered": len(done),
            "errors": load["errors"], "rps": len(done) / (last - first) if done else 0.0,
            "p50_ms": percentile(latencies, 50) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000, "peak_rss_mb": gateway.peak_rss_mb,
            **cores}


def sustained(workdir: Path, sinks: Sinks, capacity: float, seconds: float,
              p99_ms: float) -> dict[str, Any]:
    """The highest of a few rates below `capacity` (the saturated throughput) that the
    gateway keeps up with: all delivered at the offered rate, p99 within `p99_ms`."""
    tried: list[float] = []
    result: dict[str, Any] = {}
    for share in (0.9, 0.75, 0.6):
        rate = max(10.0, round(capacity * share / 10) * 10)
        if rate in tried:
            break
        tried.append(rate)
        result = end_to_end(workdir, sinks, rate, seconds)
        result["kept_up"] = (result["delivered"] == result["sent"]
                             and result["rps"] >= 0.95 * result["offered_rps"]
                             and result["p99_ms"] <= p99_ms)
        if result["kept_up"]:
            break
    return {**result, "tried": tried}


def outbound(workdir: Path, sinks: Sinks, count: int, batch: int) -> dict[str, Any]:
    """`count` requests on sms.outbound until the ClickSend simulator accepted them all."""
    sinks.reset()
    clicksend = f"max_batch = {batch}\nrequests_per_second = 1000\n"
    gateway = Gateway(workdir / f"outbound-{batch}", sinks, ["clicksend"], clicksend)
    try:
        # The simulator shares the two cores: its share says how much the far end took.
        cpu = gateway.watch_cpu(sinks=sinks.process.pid)
        published, stats = send_burst(gateway, sinks, count)
        cores = cpu.stop()
        gateway.sample_rss()
    finally:
        gateway.close()
    accepted = stats["clicksend"]
    elapsed = accepted["last"] - published["started"]
    return {"messages": count, "accepted": accepted["accepted"],
            "send_requests": accepted["requests"], "max_batch": batch,
            "rps": accepted["accepted"] / elapsed if elapsed > 0 else 0.0,
            "publish_rps": count / (published["published"] - published["started"]),
            "peak_rss_mb": gateway.peak_rss_mb, **cores}


@dataclass(frozen=True)
class OnePerCall:
    """A carrier whose API takes one message a call, paced at its documented rate."""

    name: str  # its plugin, and its key in the sinks' stats
    title: str
    number: str  # ours on it
    limit: float  # messages a second it documents
    limit_of: str  # what that limit is
    table: str  # its plugin's settings that pace it at `limit`


CARRIERS = {
    # Telnyx's documented account default for SMS (providers reference §1, rate limits).
    "telnyx": OnePerCall("telnyx", "Telnyx", TELNYX_OURS, 50.0, "account default",
                         "requests_per_second = 50.0"),
    # Twilio's limit is per sender: 30 MPS for a short code, 3 toll-free, 1 segment a
    # second for a long code (peers-and-design reference, Twilio sender limits).
    "twilio": OnePerCall("twilio", "Twilio", TWILIO_OURS, 30.0, "per short code",
                         "segments_per_second = 30.0"),
}


def outbound_one_per_call(workdir: Path, sinks: Sinks, carrier: OnePerCall,
                          count: int) -> dict[str, Any]:
    """`count` requests from the carrier's number until its simulator accepted them all:
    one message a call, the plugin's client-side limit set to the documented rate."""
    sinks.reset()
    # ClickSend too: the bench's numbers include its ClickSend one.
    gateway = Gateway(workdir / f"outbound-{carrier.name}", sinks, ["clicksend", carrier.name],
                      tables={carrier.name: carrier.table})
    try:
        cpu = gateway.watch_cpu(sinks=sinks.process.pid)
        published, stats = send_burst(gateway, sinks, count, carrier.name, carrier.number,
                                      30 + count / carrier.limit * 2)
        cores = cpu.stop()
        gateway.sample_rss()
    finally:
        gateway.close()
    accepted = stats[carrier.name]
    elapsed = accepted["last"] - published["started"]
    return {"messages": count, "accepted": accepted["accepted"],
            "send_requests": accepted["requests"], "limit_rps": carrier.limit,
            "rps": accepted["accepted"] / elapsed if elapsed > 0 else 0.0,
            "steady_rps": steady_rate(accepted["accepted_at"]),
            "span_s": accepted["last"] - accepted["first"],
            "peak_rss_mb": gateway.peak_rss_mb, **cores}


def steady_rate(times: list[float]) -> float:
    """Messages a second after the first second: the pacing may let a second's worth go at
    once (a token bucket of `limit`), which a short run's average overstates."""
    if not times:
        return 0.0
    skip = next((n for n, t in enumerate(times) if t >= times[0] + 1.0), len(times))
    if len(times) - skip < 2 or times[-1] <= times[skip]:
        return 0.0
    return (len(times) - 1 - skip) / (times[-1] - times[skip])


def send_burst(gateway: Gateway, sinks: Sinks, count: int, carrier: str = "clicksend",
               number: str | None = None, timeout: float = 120
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    """`count` requests published on sms.outbound by `bench.publisher` (from `number`, else
    its default), then the sinks' stats once `carrier`'s simulator accepted them all:
    what the publisher printed, and those stats."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.publisher", gateway.nats_url, str(count),
         *([number] if number else [])], capture_output=True, text=True, check=True)
    published = json.loads(out.stdout.strip().splitlines()[-1])
    return published, settle(sinks, lambda s: s[carrier]["accepted"] >= count, timeout)


def settle(sinks: Sinks, done: Any, timeout: float) -> dict[str, Any]:
    """The sinks' stats once `done(counts)`, or as they are at the deadline."""
    deadline = time.monotonic() + timeout
    while not done(sinks.counts()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return sinks.stats()
