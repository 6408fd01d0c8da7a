"""`python -m bench.outcpu [count]`: gateway CPU per outbound message of a burst, counted
until the gateway is idle again, not only until the last send was accepted.

`--only outbound` measures the burst's throughput up to ClickSend's last accept; work the
gateway does after it (status folds that fell behind) is outside that figure. This
counts both: the gateway's CPU (user + system, from /proc) from the first request until
every request was accepted, then until its CPU stood still for `IDLE` seconds.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from bench.procs import Gateway, Sinks, cpu_seconds
from bench.scenarios import send_burst

# The gateway is idle once it used less than `STILL` s of CPU in `IDLE` s.
IDLE = 2.0
STILL = 0.08


def measure(count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        sinks = Sinks()
        try:
            sinks.reset()
            gateway = Gateway(Path(tmp) / "gateway", sinks, ["clicksend"],
                              "max_batch = 1000\nrequests_per_second = 1000\n")
            try:
                start = cpu_seconds(gateway.process.pid)
                published, stats = send_burst(gateway, sinks, count)
                accepted_at = time.monotonic()
                at_accept = cpu_seconds(gateway.process.pid) - start
                last = cpu_seconds(gateway.process.pid)
                while True:
                    time.sleep(IDLE)
                    now = cpu_seconds(gateway.process.pid)
                    if now - last < STILL:
                        break
                    last = now
                after = time.monotonic() - IDLE - accepted_at
            finally:
                gateway.close()
        finally:
            sinks.close()
    elapsed = stats["clicksend"]["last"] - published["started"]
    return {"messages": count, "rps": round(count / elapsed),
            "cpu_ms_until_accepted": round(1000 * at_accept / count, 3),
            "cpu_ms_until_idle": round(1000 * (last - start) / count, 3),
            "busy_after_accepted_s": round(max(after, 0.0), 1)}


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)))
