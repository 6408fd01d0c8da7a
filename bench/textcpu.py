"""`python -m bench.textcpu [rate] [seconds] [rounds] [--cprofile FILE]`: gateway CPU per
inbound text delivered to the app and by email.

The end to end counterpart of `bench.cpu` (CPU per ingest webhook): texts at a fixed
offered rate (`bench.load`'s open loop) through one gateway (ClickSend, mobile app, email)
with the sinks as the far ends, and the gateway's CPU (user + system, from /proc) from the
first webhook until every text reached both sinks and the folds were given a moment,
divided by the texts, and how often the gateway was woken per text (`wakeups`, its
threads' voluntary context switches: at light load the CPU follows them, see
docs/performance.md "Light load"). At a rate the gateway keeps up with, this moves much less than
throughput on a shared machine. Issue 19 asks ≤ 1.5 ms at 50/s.

`--cprofile FILE` runs the gateway under cProfile (its figures then only show where the
time goes) and writes the stats to FILE for `pstats`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.load import run_open
from bench.procs import Gateway, Sinks, cpu_seconds, wakeups

# After the last text reached both sinks, its status events are still being folded.
FOLD_GRACE = 1.0


def _wait(sinks: Sinks, count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = sinks.counts()
        if counts["app"] >= count and counts["email"] >= count:
            return True
        time.sleep(0.1)
    return False


def per_text(gateway: Gateway, sinks: Sinks, rate: float, seconds: float) -> dict[str, Any]:
    """One run at `rate` for `seconds`; the gateway's CPU per text delivered (ms)."""
    sinks.reset()
    pid = gateway.process.pid
    before, woken = cpu_seconds(pid), wakeups(pid)
    load = run_open(gateway.webhook, rate, seconds)
    sent = len(load["sent"])
    done = _wait(sinks, sent, 60)
    time.sleep(FOLD_GRACE)
    used, woke = cpu_seconds(pid) - before, wakeups(pid) - woken
    return {"rate": rate, "texts": sent, "all_delivered": done, "errors": load["errors"],
            "cpu_ms": round(1000 * used / max(1, sent), 3),
            "wakeups": round(woke / max(1, sent), 1)}


def measure(rates: list[float], seconds: float, rounds: int,
            cprofile: Path | None = None) -> dict[str, Any]:
    runs: dict[float, list[dict[str, Any]]] = {rate: [] for rate in rates}
    with tempfile.TemporaryDirectory(prefix="pbxsms-textcpu-") as folder:
        sinks = Sinks()
        gateway = None
        try:
            gateway = Gateway(Path(folder) / "gw", sinks, ["clicksend", "mobileapp", "email"],
                              cprofile=cprofile)
            run_open(gateway.webhook, 20, 1)  # warm-up: connections, first KV keys
            _wait(sinks, 20, 30)
            for _ in range(rounds):
                for rate in rates:
                    runs[rate].append(per_text(gateway, sinks, rate, seconds))
        finally:
            if gateway is not None:
                gateway.close()
            sinks.close()
    return {"runs": {str(rate): found for rate, found in runs.items()},
            "median_cpu_ms": {str(rate): statistics.median(r["cpu_ms"] for r in found)
                              for rate, found in runs.items()},
            "median_wakeups": {str(rate): statistics.median(r["wakeups"] for r in found)
                               for rate, found in runs.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.textcpu")
    parser.add_argument("rates", type=str, nargs="?", default="300,50",
                        help="offered texts a second, comma-separated")
    parser.add_argument("seconds", type=float, nargs="?", default=20.0)
    parser.add_argument("rounds", type=int, nargs="?", default=1)
    parser.add_argument("--cprofile", type=Path)
    args = parser.parse_args()
    rates = [float(rate) for rate in args.rates.split(",")]
    result = measure(rates, args.seconds, args.rounds, args.cprofile)
    for rate, runs in result.pop("runs").items():
        for run in runs:
            print(rate, json.dumps(run))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
