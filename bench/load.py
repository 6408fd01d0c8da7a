"""Load generators, each run in its own process: wrk when installed, else Python.

`python -m bench.load closed <url> <connections> <seconds>`: as many webhooks as the
server takes over `connections` keep-alive connections (the Python stand-in for wrk).
`python -m bench.load open <url> <rate> <seconds>`: webhooks at a fixed rate whatever
the answers (open loop, so a slow server shows as latency, not as a lower offered load);
prints when each tagged message was sent, for end-to-end latency.
Each prints one JSON line.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from aiohttp import ClientSession, ClientTimeout, TCPConnector

from bench.procs import CUSTOMERS, OURS, customer

# The form ClickSend posts for an inbound SMS (docs reference §3(b)), per message.
FORM = ("originalsenderid={ours}&body={body}&message={body}&sms={customer}&from={customer}"
        "&to={ours}&timestamp={ts}&message_id={id}&original_message_id=&originalmessageid="
        "&original_body=&originalmessage=&user_id=304497&subaccount_id=&custom_string="
        "&customstring=")


def form(n: int, message_id: str) -> bytes:
    """Message `n`, from a customer picked at random from the pool."""
    return FORM.format(ours=quote_plus(OURS),
                       customer=quote_plus(customer(random.randrange(CUSTOMERS))),
                       body=quote_plus(f"Table for 4 at 8? bench#{n}"), ts=int(time.time()),
                       id=message_id).encode()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


async def closed(url: str, connections: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    counter = itertools.count()
    prefix = uuid.uuid4().hex[:8].upper()
    deadline = time.monotonic() + seconds

    async def worker(http: ClientSession) -> None:
        nonlocal errors
        while time.monotonic() < deadline:
            n = next(counter)
            data = form(n, f"{prefix}-{n:012d}")
            start = time.perf_counter()
            async with http.post(url, data=data, headers=HEADERS) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - start)

    connector = TCPConnector(limit=connections)
    async with ClientSession(connector=connector, timeout=ClientTimeout(total=30)) as http:
        began = time.monotonic()
        await asyncio.gather(*(worker(http) for _ in range(connections)))
        elapsed = time.monotonic() - began
    return {"tool": "python", "requests": len(latencies), "errors": errors,
            "rps": len(latencies) / elapsed, "p50_ms": percentile(latencies, 50) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000}


async def open_loop(url: str, rate: float, seconds: float) -> dict[str, Any]:
    sent: dict[str, float] = {}
    errors = 0
    prefix = uuid.uuid4().hex[:8].upper()
    total = int(rate * seconds)
    tasks: set[asyncio.Task[None]] = set()

    async def one(http: ClientSession, n: int) -> None:
        nonlocal errors
        sent[str(n)] = time.time()
        try:
            async with http.post(url, data=form(n, f"{prefix}-{n:012d}"),
                                 headers=HEADERS) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
        except Exception:
            errors += 1

    connector = TCPConnector(limit=256)
    async with ClientSession(connector=connector, timeout=ClientTimeout(total=60)) as http:
        began = time.monotonic()
        for n in range(total):
            delay = began + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(http, n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        offered_for = time.monotonic() - began
        await asyncio.gather(*tasks)
    return {"tool": "python", "sent": sent, "errors": errors,
            "offered_rps": total / offered_for}


WRK_SCRIPT = """
local counter = 0
local prefix = "%(prefix)s"
local form = "%(form)s"
local customers = %(customers)d
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
function request()
  counter = counter + 1
  local id = string.format("%%s-%%d-%%012d", prefix, math.random(1, 1000000000), counter)
  local customer = string.format("%%%%2B614900%%05d", math.random(0, customers - 1))
  -- A function as replacement: its result is taken as it is, escapes and all.
  local body = string.gsub(form, "MSGID", id)
  body = string.gsub(body, "CUSTOMER", function() return customer end)
  return wrk.format(nil, nil, nil, body)
end
done = function(summary, latency, requests)
  io.write(string.format("JSON {\\"requests\\": %%d, \\"errors\\": %%d, \\"p50_us\\": %%d, "
    .. "\\"p99_us\\": %%d, \\"duration_us\\": %%d}\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout, latency:percentile(50),
    latency:percentile(99), summary.duration))
end
"""


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_closed(url: str, connections: int, seconds: float) -> dict[str, Any]:
    """Closed-loop load with wrk (2 threads) if installed, else the Python generator."""
    if not wrk_available():
        return _python("closed", url, connections, seconds)
    body = FORM.format(ours=quote_plus(OURS), customer="CUSTOMER",
                       body=quote_plus("Table for 4 at 8? bench#0"), ts=int(time.time()),
                       id="MSGID")
    script = WRK_SCRIPT % {"prefix": uuid.uuid4().hex[:8].upper(), "form": body,
                           "customers": CUSTOMERS}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "webhook.lua"
        path.write_text(script, encoding="utf-8")
        out = subprocess.run(
            ["wrk", "-t", "1", "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
             "--timeout", "10s", "-s", str(path), url],
            capture_output=True, text=True, check=True)
    match = re.search(r"^JSON (.*)$", out.stdout, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no summary: {out.stdout} {out.stderr}")
    raw = json.loads(match.group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
    return {"tool": "wrk", "requests": raw["requests"],
            "errors": raw["errors"] + (int(non_2xx.group(1)) if non_2xx else 0),
            "rps": raw["requests"] / (raw["duration_us"] / 1e6),
            "p50_ms": raw["p50_us"] / 1000, "p99_ms": raw["p99_us"] / 1000}


def _python(mode: str, url: str, a: float, seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.load", mode, url, str(a), str(seconds)],
        capture_output=True, text=True, check=True, env=os.environ.copy())
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run_open(url: str, rate: float, seconds: float) -> dict[str, Any]:
    """The open-loop Python generator, in its own process."""
    return _python("open", url, rate, seconds)


def main(argv: list[str]) -> None:
    mode, url, amount, seconds = argv[0], argv[1], float(argv[2]), float(argv[3])
    if mode == "closed":
        result = asyncio.run(closed(url, int(amount), seconds))
    else:
        result = asyncio.run(open_loop(url, amount, seconds))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
