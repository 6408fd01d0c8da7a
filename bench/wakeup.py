"""`python -m bench.wakeup [rate] [count]`: what it costs this machine to wake an event loop.

The light-load target (gateway CPU per inbound text at 50/s) is set by how often the
gateway wakes from idle more than by what it does when awake: on a virtual machine a
process woken after a few ms asleep runs on cold caches (its vCPU halted meanwhile).
This prints, on the gateway's own event loop (`pbxsms.core.serve.eventloop`), the CPU
(user + system, from `getrusage`) of one wakeup by a timer at `rate` a second and back to
back, and of one JetStream publish with its PubAck (against a nats-server of its own)
spaced at `rate` and back to back. Their quotient is the machine's, not the gateway's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import subprocess
import tempfile
import time
from typing import Any

import nats
from nats.js.api import StorageType, StreamConfig

from bench.procs import free_port
from pbxsms.bus.embedded import nats_server_binary
from pbxsms.core.serve import eventloop


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


async def _timer_wakeups(gap: float, count: int) -> float:
    """µs of CPU per `asyncio.sleep(gap)`; 0 yields to the loop without sleeping."""
    start = _cpu()
    for _ in range(count):
        await asyncio.sleep(gap)
    return 1e6 * (_cpu() - start) / count


async def _publishes(url: str, gap: float, count: int) -> float:
    """µs of CPU per JetStream publish and PubAck, one every `gap` seconds."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="WAKEUP", subjects=["wakeup"],
                                         storage=StorageType.FILE))
        await js.publish("wakeup", b"warm-up")
        start = _cpu()
        for _ in range(count):
            await js.publish("wakeup", b"x" * 200)
            if gap:
                await asyncio.sleep(gap)
        used = 1e6 * (_cpu() - start) / count
        # The spaced run's own timer wakeups are in `used`: take them out.
        return used - (await _timer_wakeups(gap, count) if gap else 0.0)
    finally:
        await nc.close()


async def measure(url: str, rate: float, count: int) -> dict[str, Any]:
    gap = 1.0 / rate
    return {
        "rate": rate,
        "timer_wakeup_us": round(await _timer_wakeups(gap, count), 1),
        "loop_turn_us": round(await _timer_wakeups(0, count * 20), 1),
        "publish_spaced_us": round(await _publishes(url, gap, count), 1),
        "publish_back_to_back_us": round(await _publishes(url, 0, count * 10), 1),
    }


def _serve(folder: str, port: int) -> subprocess.Popen[bytes]:
    """A nats-server with JetStream of our own, once it takes connections."""
    server = subprocess.Popen([nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(port),
                               "-sd", folder], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                raise
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.wakeup")
    parser.add_argument("rate", type=float, nargs="?", default=50.0)
    parser.add_argument("count", type=int, nargs="?", default=300)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pbxsms-wakeup-") as folder:
        server = _serve(folder, port)
        try:
            found = eventloop.run(measure(f"nats://127.0.0.1:{port}", args.rate, args.count))
        finally:
            server.terminate()
            server.wait(10)
    print(json.dumps(found))


if __name__ == "__main__":
    main()
