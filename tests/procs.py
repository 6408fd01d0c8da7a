"""`pbxsms serve` as a real subprocess, and the nats-servers it starts, seen from /proc."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

PBXSMS = [sys.executable, "-c", "from pbxsms.core.cli import main; main()"]


class Proc:
    def __init__(self, cwd: Path, http_port: int, nats_port: int, env: dict[str, str]) -> None:
        self.cwd, self.http_port, self.nats_port = cwd, http_port, nats_port
        self.log = cwd / "serve.log"
        full_env = {**os.environ, "PBXSMS_HTTP_PORT": str(http_port),
                    "PBXSMS_EMBEDDED_NATS_PORT": str(nats_port),
                    "PBXSMS_ENV_FILE": str(cwd / ".env"), **env}
        self.popen = subprocess.Popen(
            [*PBXSMS, "serve"], cwd=cwd, env=full_env,
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT)

    def get(self, path: str) -> tuple[int, dict[str, object]]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}",
                                        timeout=2) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError(f"serve exited early:\n{self.log.read_text()}")
            try:
                if self.get("/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"not ready in {timeout}s:\n{self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int:
        self.popen.send_signal(sig)
        return self.popen.wait(timeout)


def nats_server_children(parent: int) -> set[int]:
    """nats-server processes whose parent is `parent` (other tests may run their own)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if b"nats-server" in cmd and ppid == parent:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
