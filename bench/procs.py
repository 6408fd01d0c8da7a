"""Starting and watching the processes of a run: the gateway, the sinks, the yardstick."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.load import OURS
from bench.sinks import (
    APP_TOKEN,
    KEY,
    TELNYX_KEY,
    TELNYX_OURS,
    TWILIO_OURS,
    TWILIO_SID,
    TWILIO_TOKEN,
    USER,
)
from pbxsms.bus.embedded import EMBEDDED_DIR, embedded_url

HOOK_TOKEN = "bench-hook-token"
API_TOKEN = "bench-api-token"
ORG = "bench-org"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, timeout: float = 60.0) -> None:
    """Wait until `url` answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} not ready after {timeout:.0f}s")
        time.sleep(0.1)


def stop(process: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set (VmHWM), in MB; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wakeups(pid: int) -> int:
    """How many times the process's threads went to sleep and were woken (voluntary
    context switches): at light load each costs far more CPU than the work it wakes for."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/status", encoding="utf-8") as status:
                for line in status:
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
        except OSError:
            continue  # a thread that ended meanwhile
    return total


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="utf-8") as found:
            return [int(child) for child in found.read().split()]
    except OSError:
        return []


def ended_children_cpu() -> float:
    """User + system CPU time of this process's children that ended (and were waited
    for) so far: the load generators, which run to completion in `subprocess.run`."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuWatch:
    """CPU seconds the gateway and its embedded nats-server use between start and stop,
    and the load generator that ran meanwhile."""

    def __init__(self, gateway: int, nats: int | None = None, **more: int) -> None:
        nats = nats if nats is not None else (children(gateway) or [0])[0]
        self.pids = {"gateway": gateway, "nats": nats, **more}
        self.start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.generators = ended_children_cpu()
        self.began = time.monotonic()

    def stop(self) -> dict[str, float]:
        """Cores used by each over the interval (1.0 = one core busy), the gateway's CPU
        seconds, and the interval's length."""
        elapsed = time.monotonic() - self.began
        used = {name: cpu_seconds(pid) - self.start[name] for name, pid in self.pids.items()}
        cores: dict[str, float] = {f"{name}_cores": round(seconds / elapsed, 2)
                                   for name, seconds in used.items()}
        cores["generator_cores"] = round((ended_children_cpu() - self.generators) / elapsed, 2)
        cores["gateway_cpu_s"] = round(used["gateway"], 3)
        cores["watched_s"] = round(elapsed, 3)
        return cores


class Sinks:
    """`python -m bench.sinks` in its own process."""

    def __init__(self) -> None:
        self.smtp_port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.sinks", str(self.smtp_port)],
            stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the sinks process did not start")
        self.urls: dict[str, Any] = json.loads(line)

    def stats(self) -> dict[str, Any]:
        """When each message arrived at the app and SMTP sinks; ClickSend's counts."""
        return self._get("/stats")

    def counts(self) -> dict[str, Any]:
        """How many messages arrived at each (for polling while the gateway works)."""
        return self._get("/counts")

    def _get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(self.urls["control"] + path, timeout=30) as r:
            data: dict[str, Any] = json.load(r)
            return data

    def reset(self) -> None:
        request = urllib.request.Request(self.urls["control"] + "/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30):
            pass

    def close(self) -> None:
        stop(self.process)


# The carriers' numbers beside ClickSend's: carrier → (number, extension).
CARRIER_NUMBERS = {"telnyx": (TELNYX_OURS, "202"), "twilio": (TWILIO_OURS, "203")}


def gateway_toml(plugins: list[str], clicksend: str = "",
                 tables: dict[str, str] | None = None) -> str:
    """`tables`: more TOML tables by name (a carrier's settings, e.g. `[twilio]`)."""
    extra = "".join(f"\n[{name}]\n{body}\n" for name, body in (tables or {}).items())
    # A carrier's number only when its plugin runs: a number's provider must be enabled.
    numbers = "".join(f"""
[[numbers]]
number = "{number}"
provider = "{carrier}"
extension = "{extension}"
""" for carrier, (number, extension) in CARRIER_NUMBERS.items() if carrier in plugins)
    return f"""
[plugins]
enabled = {json.dumps(plugins)}

[bus]
{os.environ.get("BENCH_BUS", "")}

[clicksend]
{clicksend}
{extra}
[[numbers]]
number = "{OURS}"
provider = "clicksend"
extension = "201"
domain = "pbx.example.com"
email = ["desk@example.com"]
mobileapp_org = "{ORG}"
{numbers}"""


class Gateway:
    """`pbxsms serve` with its embedded NATS, in its own process and data directory."""

    def __init__(self, workdir: Path, sinks: Sinks, plugins: list[str],
                 clicksend: str = "", profile: Path | None = None,
                 tables: dict[str, str] | None = None,
                 extra_env: dict[str, str] | None = None,
                 nats_url: str | None = None, cprofile: Path | None = None,
                 wrapper: tuple[str, ...] = (), start_timeout: float = 60.0) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = workdir / "pbxsms.toml"
        config.write_text(gateway_toml(plugins, clicksend, tables), encoding="utf-8")
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("PBXSMS_", "CLICKSEND_", "RINGOTEL_", "TELNYX_",
                                      "TWILIO_", "BANDWIDTH_", "FREESWITCH_"))
               and key != "NATS_URL"}
        env.update({
            "PBXSMS_ENV_FILE": os.devnull, "PBXSMS_CONFIG": str(config),
            "PBXSMS_DATA_DIR": str(workdir / "var"), "PBXSMS_HTTP_PORT": str(self.port),
            "PBXSMS_EMBEDDED_NATS_PORT": str(free_port()), "PBXSMS_API_TOKEN": API_TOKEN,
            "PBXSMS_DEFAULT_REGION": "AU",
            "CLICKSEND_USERNAME": USER, "CLICKSEND_API_KEY": KEY,
            "CLICKSEND_BASE_URL": sinks.urls["clicksend"],
            "CLICKSEND_WEBHOOK_TOKEN": HOOK_TOKEN,
            "TELNYX_API_KEY": TELNYX_KEY, "TELNYX_BASE_URL": sinks.urls["telnyx"],
            "TELNYX_PUBLIC_KEY": sinks.urls["telnyx_public_key"],
            "TWILIO_ACCOUNT_SID": TWILIO_SID, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "TWILIO_BASE_URL": sinks.urls["twilio"],
            "RINGOTEL_API_URL": sinks.urls["app"], "RINGOTEL_API_TOKEN": APP_TOKEN,
            "PBXSMS_SMTP_HOST": "127.0.0.1", "PBXSMS_SMTP_PORT": str(sinks.urls["smtp_port"]),
            "PBXSMS_SMTP_FROM": "sms@pbx.example.com",
            **(extra_env or {}),
        })
        if nats_url is not None:  # a nats-server of the bench's instead of the embedded one
            env["NATS_URL"] = nats_url
        self.log = (workdir / "gateway.log").open("w", encoding="utf-8")
        start = "from pbxsms.core.cli import main; main()"
        if cprofile is not None:  # stats written when `serve` returns (on SIGTERM)
            start = ("import cProfile; from pbxsms.core.cli import main; "
                     f"cProfile.run('main()', {str(cprofile)!r})")
        # `wrapper`: a command the gateway runs under (valgrind: bench/instructions.py,
        # bench/textinstructions.py).
        command = [*wrapper, sys.executable, "-c", start, "serve"]
        self.process = subprocess.Popen(
            command, env=env,
            stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        try:
            wait_http(self.url + "/readyz", start_timeout)
        except RuntimeError:
            self.close()
            raise
        # The embedded server takes only clients with its token, written at its start.
        self.nats_url = nats_url or embedded_url(int(env["PBXSMS_EMBEDDED_NATS_PORT"]),
                                                 workdir / "var" / EMBEDDED_DIR)
        self.peak_rss_mb = 0.0
        self.profiler: subprocess.Popen[bytes] | None = None
        if profile is not None:  # collapsed stacks, for `python -m bench.profile`
            self.profiler = subprocess.Popen([
                str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw",
                "--rate", "200", "--nonblocking", "--pid", str(self.process.pid),
                "--output", str(profile)], stdout=subprocess.DEVNULL)

    @property
    def webhook(self) -> str:
        return f"{self.url}/webhook/clicksend/sms?token={HOOK_TOKEN}"

    def watch_cpu(self, **more: int) -> CpuWatch:
        """Also watches the processes named in `more` (name=pid)."""
        return CpuWatch(self.process.pid, **more)

    def sample_rss(self) -> float:
        """The peak RSS so far (the kernel keeps the high-water mark)."""
        rss = peak_rss_mb(self.process.pid)
        if rss is not None:
            self.peak_rss_mb = max(self.peak_rss_mb, rss)
        return self.peak_rss_mb

    def close(self) -> None:
        self.sample_rss()
        if self.profiler is not None:  # py-spy writes its output on SIGINT
            self.profiler.send_signal(signal.SIGINT)
            self.profiler.wait(30)
        stop(self.process)
        self.log.close()


class Bare:
    """A bare aiohttp handler in its own process; with `nats_url`, the one that also
    stores each webhook on JetStream (`bench.bare`)."""

    def __init__(self, nats_url: str | None = None, wrapper: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [*wrapper, sys.executable, "-m", "bench.bare", str(self.port),
             *filter(None, [nats_url])])
        self.url = f"http://127.0.0.1:{self.port}"
        wait_http(self.url + "/healthz", 600 if wrapper else 60)

    @property
    def webhook(self) -> str:
        return f"{self.url}/webhook/clicksend/sms?token={HOOK_TOKEN}"

    def close(self) -> None:
        stop(self.process)
