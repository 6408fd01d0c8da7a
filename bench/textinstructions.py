"""`python -m bench.textinstructions [rate] [seconds]`: machine instructions the gateway executes
per inbound text delivered to the app and by email, counted by valgrind's callgrind.

CPU time per text (`bench.textcpu`) moves by 5-10 % from run to run on the shared machine,
more than most single changes save. An instruction count does not depend on what else
runs: the same code and load give the same count within about 1 %, so a change of some
tens of µs a text shows. The gateway runs under callgrind (about 50 times slower, so the
rate is low: each text is handled alone, as at light load); its counters are zeroed
after the warm-up and dumped once every text reached both sinks and the folds had a
moment. Instructions are not time (a regex pass is many cheap ones), so quote both. Needs
`valgrind` (Debian package).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import procs
from bench.load import run_open
from bench.textcpu import FOLD_GRACE, _wait

# Under callgrind the gateway starts in 30-60 s instead of 1-2.
START_TIMEOUT = 900.0


def summary(dump: str) -> int:
    """The instructions a callgrind dump counted (its `summary:` line)."""
    for line in dump.splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise ValueError("no summary line in the callgrind dump")


def measure(rate: float, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pbxsms-instructions-") as folder:
        work = Path(folder)
        dumps = work / "callgrind"
        dumps.mkdir()
        sinks = procs.Sinks()
        gateway = None
        try:
            gateway = procs.Gateway(
                work / "gw", sinks, ["clicksend", "mobileapp", "email"],
                wrapper=("valgrind", "--tool=callgrind", "--dump-instr=no",
                         f"--callgrind-out-file={dumps}/out.%p"),
                start_timeout=START_TIMEOUT)
            run_open(gateway.webhook, 2, 5)  # warm-up: connections, first KV keys
            _wait(sinks, 10, 300)
            pid = str(gateway.process.pid)
            subprocess.run(["callgrind_control", "--zero", pid], check=True,
                           capture_output=True)
            sinks.reset()
            load = run_open(gateway.webhook, rate, seconds)
            texts = len(load["sent"])
            delivered = _wait(sinks, texts, 300)
            time.sleep(3 * FOLD_GRACE)
            before = set(dumps.iterdir())
            subprocess.run(["callgrind_control", "--dump", pid], check=True,
                           capture_output=True)
            deadline = time.monotonic() + 60
            while not (new := set(dumps.iterdir()) - before):
                if time.monotonic() > deadline:
                    raise RuntimeError("callgrind wrote no dump")
                time.sleep(0.1)
            (dump,) = new
            counted = summary(dump.read_text(encoding="utf-8", errors="replace"))
        finally:
            if gateway is not None:
                gateway.close()
            sinks.close()
    return {"rate": rate, "texts": texts, "all_delivered": delivered,
            "errors": load["errors"],
            "instructions_per_text_m": round(counted / max(1, texts) / 1e6, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.textinstructions")
    parser.add_argument("rate", type=float, nargs="?", default=3.0)
    parser.add_argument("seconds", type=float, nargs="?", default=30.0)
    args = parser.parse_args()
    print(json.dumps(measure(args.rate, args.seconds)))


if __name__ == "__main__":
    main()
