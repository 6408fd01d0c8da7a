"""`python -m bench.cpu [seconds] [rounds] [--cprofile FILE]`: CPU per ingest webhook.

Throughput on a shared machine swings with whatever else runs; the CPU a process spends
per request moves much less. This drives the ingest load (`bench.load`, 32 connections,
senders from the 10,000 customers) at the gateway (ClickSend only, its embedded
nats-server) and at the stored yardstick (`bench.bare` with the same nats-server), in
turns, and prints each one's CPU milliseconds per webhook (user + system, from /proc)
for every round and the median. Their quotient is the throughput ratio the ingest target
asks for, were each CPU bound on a core of its own.

`--cprofile FILE` runs the gateway under cProfile (much slower: its figures then only
show where the time goes) and writes the stats to FILE for `pstats`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.load import run_closed
from bench.procs import Bare, Gateway, Sinks, cpu_seconds
from bench.scenarios import CONNECTIONS


def per_webhook(pid: int, url: str, seconds: float) -> dict[str, Any]:
    """One load of `seconds` at `url`; the CPU `pid` used per answered webhook (ms)."""
    before = cpu_seconds(pid)
    load = run_closed(url, CONNECTIONS, seconds)
    used = cpu_seconds(pid) - before
    return {"cpu_ms": round(1000 * used / max(1, load["requests"]), 4),
            "rps": round(load["rps"]), "errors": load["errors"],
            "p99_ms": round(load["p99_ms"], 1)}


def measure(seconds: float, rounds: int, cprofile: Path | None = None) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"gateway": [], "stored": []}
    with tempfile.TemporaryDirectory(prefix="pbxsms-cpu-") as folder:
        sinks = Sinks()
        gateway = stored = None
        try:
            gateway = Gateway(Path(folder) / "gw", sinks, ["clicksend"], cprofile=cprofile)
            stored = Bare(gateway.nats_url)
            sides: dict[str, Gateway | Bare] = {"gateway": gateway, "stored": stored}
            for side in sides.values():
                run_closed(side.webhook, CONNECTIONS, 1)  # warm-up
            for _ in range(rounds):
                for name, side in sides.items():
                    runs[name].append(per_webhook(side.process.pid, side.webhook, seconds))
        finally:
            for server in (stored, gateway):
                if server is not None:
                    server.close()
            sinks.close()
    median = {name: statistics.median(run["cpu_ms"] for run in runs[name]) for name in runs}
    return {"runs": runs, "median_cpu_ms": median,
            "stored_over_gateway": round(median["stored"] / median["gateway"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu")
    parser.add_argument("seconds", type=float, nargs="?", default=5.0)
    parser.add_argument("rounds", type=int, nargs="?", default=3)
    parser.add_argument("--cprofile", type=Path)
    args = parser.parse_args()
    result = measure(args.seconds, args.rounds, args.cprofile)
    for name, runs in result.pop("runs").items():
        for run in runs:
            print(name, json.dumps(run))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
