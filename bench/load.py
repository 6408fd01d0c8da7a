"""Load generators, each run in its own process: wrk when installed, else Python.

`python -m bench.load closed <url> <connections> <seconds>`: as many webhooks as the
server takes over `connections` keep-alive connections (the Python stand-in for wrk).
`python -m bench.load open <url> <rate> <seconds>`: webhooks at a fixed rate whatever
the answers (open loop, so a slow server shows as latency, not as a lower offered load);
prints when each tagged message was sent, for end-to-end latency.
Each prints one JSON line, or writes it to the file named after `<seconds>`. The Python
generators share the two cores with the gateway under test, so they run on uvloop and
post with `Http`, a minimal HTTP/1.1 client.
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
from typing import Any, cast
from urllib.parse import quote_plus, urlsplit

from pbxsms.core.serve import eventloop

# Light on imports (no simulators, no pydantic): the generator starts while the load's
# CPU is measured.
OURS = "+61411111111"  # the number customers text, extension 201's
# Senders: a pool of distinct customers, so that per-customer state (the conversation
# record) is measured as it is in service, not one customer's cached copy.
CUSTOMERS = 10_000


def customer(n: int) -> str:
    """Customer `n` of the pool (any integer), E.164."""
    return f"+614900{n % CUSTOMERS:05d}"


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


class _Exchange(asyncio.Protocol):
    """One keep-alive connection: a request at a time, and the status of its answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[int] | None = None
        self.reusable = True
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value == "close":
                self.reusable = False
        if length is None:  # chunked or until close: not what the gateway answers
            self._finish(ConnectionError(f"no Content-Length in {lines[0]!r}"))
            return
        if len(self._buffer) < end + 4 + length:
            return
        del self._buffer[:end + 4 + length]
        self._finish(int(lines[0].split(" ", 2)[1]))

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._finish(ConnectionError(f"connection lost: {exc}"))

    def _finish(self, result: int | Exception) -> None:
        answer, self.answer = self.answer, None
        if isinstance(result, Exception):
            self.reusable = False
        if answer is not None and not answer.done():
            if isinstance(result, Exception):
                answer.set_exception(result)
            else:
                answer.set_result(result)


class Http:
    """POSTs forms to one URL over at most `limit` keep-alive HTTP/1.1 connections; what
    aiohttp's client did here, for a fraction of its CPU."""

    def __init__(self, url: str, limit: int, timeout: float) -> None:
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        self._head = (f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                      "Content-Type: application/x-www-form-urlencoded\r\n"
                      "Content-Length: ").encode()
        self._slots = asyncio.Semaphore(limit)
        self._idle: list[_Exchange] = []
        self._timeout = timeout

    async def post(self, body: bytes) -> int:
        """The answer's HTTP status; raises on a lost connection or after the timeout."""
        async with self._slots:
            exchange = self._idle.pop() if self._idle else await self._connect()
            while not exchange.reusable:  # the server closed it while idle
                exchange = self._idle.pop() if self._idle else await self._connect()
            assert exchange.transport is not None
            exchange.answer = asyncio.get_running_loop().create_future()
            exchange.transport.write(b"%s%d\r\n\r\n%s" % (self._head, len(body), body))
            answered = False
            try:
                async with asyncio.timeout(self._timeout):
                    status = await exchange.answer
                answered = True
            finally:
                if answered and exchange.reusable:
                    self._idle.append(exchange)
                else:
                    exchange.transport.close()
            return status

    async def _connect(self) -> _Exchange:
        _, exchange = await asyncio.get_running_loop().create_connection(
            _Exchange, self._host, self._port)
        return exchange

    def close(self) -> None:
        for exchange in self._idle:
            if exchange.transport is not None:
                exchange.transport.close()
        self._idle.clear()


async def closed(url: str, connections: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    counter = itertools.count()
    prefix = uuid.uuid4().hex[:8].upper()
    deadline = time.monotonic() + seconds
    http = Http(url, connections, timeout=30)

    async def worker() -> None:
        nonlocal errors
        while time.monotonic() < deadline:
            n = next(counter)
            data = form(n, f"{prefix}-{n:012d}")
            start = time.perf_counter()
            if await http.post(data) != 200:
                errors += 1
            latencies.append(time.perf_counter() - start)

    began = time.monotonic()
    try:
        await asyncio.gather(*(worker() for _ in range(connections)))
    finally:
        http.close()
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
    http = Http(url, 256, timeout=60)

    async def one(n: int) -> None:
        nonlocal errors
        sent[str(n)] = time.time()
        try:
            if await http.post(form(n, f"{prefix}-{n:012d}")) != 200:
                errors += 1
        except Exception:
            errors += 1

    began = time.monotonic()
    try:
        for n in range(total):
            delay = began + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        offered_for = time.monotonic() - began
        await asyncio.gather(*tasks)
    finally:
        http.close()
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
    # The result comes back in a file: once, a result of more than 64 KiB printed to the
    # pipe arrived cut at 65,536 characters, with the generator reporting success.
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "result.json"
        subprocess.run(
            [sys.executable, "-m", "bench.load", mode, url, str(a), str(seconds), str(path)],
            check=True, env=os.environ.copy())
        result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


def run_open(url: str, rate: float, seconds: float) -> dict[str, Any]:
    """The open-loop Python generator, in its own process."""
    return _python("open", url, rate, seconds)


def main(argv: list[str]) -> None:
    mode, url, amount, seconds = argv[0], argv[1], float(argv[2]), float(argv[3])
    if mode == "closed":
        result = eventloop.run(closed(url, int(amount), seconds))
    else:
        result = eventloop.run(open_loop(url, amount, seconds))
    if len(argv) > 4:  # a file to write it to
        Path(argv[4]).write_text(json.dumps(result), encoding="utf-8")
    else:
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
