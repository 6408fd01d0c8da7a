"""`python -m bench.profile ingest|end_to_end|outbound`: one measurement with the gateway
under py-spy (from the `bench` extra); prints where its time goes (self and total samples
per function). Throughput under the profiler is lower; the figures are `python -m bench`'s.
"""

from __future__ import annotations

import collections
import sys
import tempfile
from pathlib import Path

from bench import scenarios
from bench.load import run_closed, run_open
from bench.procs import Gateway, Sinks


def summarise(raw: Path, top: int = 30) -> str:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text(encoding="utf-8").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [frame.split(" (")[0] + " " + frame.rsplit("/", 1)[-1].rstrip(")")
                  for frame in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    lines = [f"{samples} samples", "", "self:"]
    lines += [f"{100 * n / samples:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", "total:"]
    lines += [f"{100 * n / samples:5.1f}%  {name}" for name, n in total.most_common(top)]
    return "\n".join(lines)


def main(which: str, seconds: float = 10.0) -> None:
    with tempfile.TemporaryDirectory(prefix="pbxsms-profile-") as folder:
        workdir = Path(folder)
        raw = workdir / "profile.txt"
        sinks = Sinks()
        try:
            if which == "outbound":
                plugins, clicksend = ["clicksend"], "requests_per_second = 1000\n"
            elif which == "ingest":
                plugins, clicksend = ["clicksend"], ""
            else:
                plugins, clicksend = ["clicksend", "mobileapp", "email"], ""
            gateway = Gateway(workdir / "gw", sinks, plugins, clicksend, profile=raw)
            try:
                if which == "ingest":
                    print(run_closed(gateway.webhook, scenarios.CONNECTIONS, seconds))
                elif which == "end_to_end":
                    load = run_open(gateway.webhook, 500, seconds)
                    scenarios.settle(sinks, lambda s: s["email"] >= len(load["sent"])
                                     and s["app"] >= len(load["sent"]), 60)
                else:
                    scenarios.send_burst(gateway, sinks, 10000, timeout=60)
            finally:
                gateway.close()
        finally:
            sinks.close()
        print(summarise(raw))
        if len(sys.argv) > 3:
            (Path(sys.argv[3])).write_text(raw.read_text(encoding="utf-8"), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1], *(float(a) for a in sys.argv[2:3]))

