"""The machine a run came from: figures mean little without it."""

from __future__ import annotations

import os
import platform
import subprocess

from pbxsms.bus.embedded import nats_server_binary
from pbxsms.core.serve import eventloop


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def nats_version() -> str:
    try:
        out = subprocess.run([nats_server_binary(), "--version"], capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired, RuntimeError):
        return "unknown"
    return out.stdout.strip() or out.stderr.strip() or "unknown"


def describe() -> dict[str, object]:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
            "nats_server": nats_version(), "os": f"{platform.system()} {platform.release()}",
            "event_loop": eventloop.name()}
