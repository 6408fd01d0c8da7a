"""`python -m bench.instructions [N] [--bare] [--warm W] [--customers C]`: instructions
per ingest webhook, counted by valgrind's callgrind (Debian package `valgrind`).

CPU time on a shared machine moves with whatever else runs; instruction counts do not.
The gateway (ClickSend only, its embedded nats-server running natively) runs under
callgrind with counting off; W webhooks warm it up (by default 8,000 from 2,000
customers, so that every conversation and phone number is known, as in a long run),
then it counts while serving N webhooks and, separately, 2N (32 connections, the bench's
form, senders drawn with a fixed seed). The difference of the two counts over N is the
work of one webhook, startup and idle work taken out. `--bare` counts the stored
yardstick (`bench.bare` with the gateway's nats-server) instead. Counts are user-space
instructions only (no kernel time); repeated runs agree within about 1 %, the batching
of a loop turn varying with the machine's load. Slow: about a minute for N = 1,000.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import re
import subprocess
import tempfile
import uuid
from pathlib import Path

import bench.load
from bench.load import Http, form
from bench.procs import Bare, Gateway, Sinks
from pbxsms.core.serve import eventloop

CONNECTIONS = 32


async def _post(url: str, count: int) -> int:
    """`count` webhooks over CONNECTIONS connections; how many were not answered 200."""
    http = Http(url, CONNECTIONS, timeout=600)
    numbers = itertools.count()
    prefix = uuid.uuid4().hex[:8].upper()
    errors = 0

    async def worker() -> None:
        nonlocal errors
        while (n := next(numbers)) < count:
            if await http.post(form(n, f"{prefix}-{n:012d}")) != 200:
                errors += 1

    try:
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    finally:
        http.close()
    return errors


def post(url: str, count: int) -> int:
    with asyncio.Runner(loop_factory=eventloop.loop_factory()) as runner:
        return runner.run(_post(url, count))


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True,
                   timeout=600)


def _total(path: Path) -> int:
    found = re.search(r"^(?:summary|totals): (\d+)", path.read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no total in {path}")
    return int(found.group(1))


def measure(count: int, bare: bool, warm: int, customers: int) -> dict[str, int]:
    bench.load.CUSTOMERS = customers
    random.seed(19)
    with tempfile.TemporaryDirectory(prefix="pbxsms-instructions-") as folder:
        out = Path(folder)
        wrapper = ("valgrind", "--tool=callgrind", "--instr-atstart=no",
                   f"--callgrind-out-file={out}/callgrind.%p", f"--log-file={out}/valgrind.log")
        sinks = Sinks()
        gateway = stored = None
        try:
            gateway = Gateway(out / "gw", sinks, ["clicksend"],
                              wrapper=() if bare else wrapper,
                              start_timeout=60 if bare else 600)
            if bare:
                stored = Bare(gateway.nats_url, wrapper=wrapper)
            target = stored or gateway
            pid = str(target.process.pid)
            errors = post(target.webhook, warm)
            _control("--instr=on", pid)
            errors += post(target.webhook, count)
            _control("--dump=n", pid)
            errors += post(target.webhook, 2 * count)
            _control("--dump=2n", pid)
            once, twice = (_total(out / f"callgrind.{pid}.{n}") for n in (1, 2))
        finally:
            for server in (stored, gateway):
                if server is not None:
                    server.close()
            sinks.close()
    return {"webhooks": count, "errors": errors, "instructions_n": once,
            "instructions_2n": twice, "per_webhook": round((twice - once) / count)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions")
    parser.add_argument("count", type=int, nargs="?", default=1000)
    parser.add_argument("--bare", action="store_true", help="the stored yardstick")
    parser.add_argument("--warm", type=int, default=8000)
    parser.add_argument("--customers", type=int, default=2000)
    args = parser.parse_args()
    print(measure(args.count, args.bare, args.warm, args.customers))


if __name__ == "__main__":
    main()
