"""`pbxsms doctor`: check a configuration against the real services, say how to fix each fault.

The core checks the settings, NATS and the stream; each plugin adds its own checks through
the `doctor_checks` hook. No check sends a message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import aiohttp
import nats
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from pbxsms.bus.embedded import EMBEDDED_DIR, embedded_url
from pbxsms.core.config.loader import describe_number, file_numbers, hide_url_password

if TYPE_CHECKING:
    from pbxsms.core.config.settings import Config
    from pbxsms.core.plugins import Plugins

TIMEOUT = 15.0


@dataclass(frozen=True)
class Finding:
    """What one check found; `fix` tells the operator what to change."""

    status: Literal["ok", "warn", "fail"]
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class Check:
    """One named check; `run` must not send messages and should finish within seconds."""

    name: str
    run: Callable[[], Awaitable[Finding]]


def ok(detail: str) -> Finding:
    return Finding("ok", detail)


def warn(detail: str, fix: str | None = None) -> Finding:
    return Finding("warn", detail, fix)


def fail(detail: str, fix: str) -> Finding:
    return Finding("fail", detail, fix)


async def run_doctor(config: Config, plugins: Plugins, echo: Callable[[str], None]) -> bool:
    """Print every finding; True when nothing failed (warnings are allowed)."""
    findings: list[tuple[str, Finding]] = []
    problems = plugins.config_warnings(config)
    # The same severity as `config check`, which exits non-zero on each of these.
    for problem in problems:
        findings.append(("settings", fail(str(problem), f"change {problem.setting}")))
    if not problems:
        findings.append(("settings", ok("no problems")))
    records = file_numbers(config, plugins)
    findings.append(("numbers", ok(
        f"{len(records)} in the config file, read with "
        f"PBXSMS_DEFAULT_REGION={config.core.default_region}")))
    for line in _lines(findings):
        echo(line)
    for index, (row, record) in enumerate(zip(config.file.numbers, records, strict=True)):
        echo(f"      {describe_number(index, row, record)}")
    healthy = not problems
    for check in plugins.doctor_checks(config):
        finding = await _run(check)
        healthy = healthy and finding.status != "fail"
        for line in _lines([(check.name, finding)]):
            echo(line)
    echo("doctor: all checks passed" if healthy else "doctor: problems found (see FAIL above)")
    return healthy


async def _run(check: Check) -> Finding:
    try:
        return await asyncio.wait_for(check.run(), TIMEOUT)
    except TimeoutError:
        return fail(f"no answer within {TIMEOUT:.0f}s", "check the host and the network path")
    except Exception as error:  # a broken check is a finding, not a crash
        return fail(f"the check itself failed: {type(error).__name__}: {error}",
                    "report this with the output of `pbxsms doctor`")


def _lines(findings: list[tuple[str, Finding]]) -> list[str]:
    label = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
    lines = []
    for name, finding in findings:
        lines.append(f"{label[finding.status]}  {name}: {finding.detail}")
        if finding.fix:
            lines.append(f"      fix: {finding.fix}")
    return lines


# -- the core's own checks (registered by core/health/plugin.py) -------------------


def core_checks(config: Config) -> list[Check]:
    return [Check("nats", lambda: _nats(config)), Check("stream", lambda: _stream(config)),
            Check("api", lambda: _api_token(config))]


def gateway_url(config: Config) -> str:
    """Where the CLI reaches the running gateway: a wildcard listener on loopback."""
    host = config.core.http_host
    host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{config.core.http_port}"


async def _api_token(config: Config) -> Finding:
    """Whether this PBXSMS_API_TOKEN (the one `pbxsms numbers`, `send` and `messages`
    use) is the running gateway's: a read of `/api/v1/numbers`, which changes nothing."""
    token = config.core.api_token.get_secret_value() if config.core.api_token else ""
    if not token:
        return fail("PBXSMS_API_TOKEN unset: the API refuses every call",
                    "set PBXSMS_API_TOKEN to a long random value, then `pbxsms reload`")
    url = gateway_url(config)
    timeout = aiohttp.ClientTimeout(total=3.0)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http, http.get(
                f"{url}/api/v1/numbers", headers={"Authorization": f"Bearer {token}"}
        ) as response:
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as error:
        return warn(f"not checked: no gateway answers at {url} ({type(error).__name__})",
                    "start `pbxsms serve` (or check PBXSMS_HTTP_HOST and PBXSMS_HTTP_PORT) "
                    "and run doctor again")
    if status == 401:
        return fail(f"the gateway at {url} refuses this PBXSMS_API_TOKEN",
                    "the CLI reads PBXSMS_API_TOKEN from the environment or .env: make it "
                    "the running gateway's, or `pbxsms reload` the gateway after changing it")
    if status != 200:
        return fail(f"{url}/api/v1/numbers answered {status}",
                    "is that address this gateway? check PBXSMS_HTTP_HOST and PBXSMS_HTTP_PORT")
    return ok(f"the gateway at {url} accepts this PBXSMS_API_TOKEN")


def nats_servers(config: Config) -> tuple[list[str], bool]:
    """NATS_URL's servers, or the embedded server's URL; True when NATS_URL is set."""
    servers = config.core.nats_servers()
    if servers:
        return servers, True
    # With the secret the running `pbxsms serve` generated in the data dir.
    return [embedded_url(config.core.embedded_nats_port,
                         config.core.data_dir / EMBEDDED_DIR)], False


async def _connect(config: Config) -> NATS:
    servers, _ = nats_servers(config)

    async def quiet(error: Exception) -> None:
        """The finding reports the error; nats-py would print a traceback per attempt."""

    # (allow_reconnect=False makes nats-py retry the first connect forever.)
    return await nats.connect(servers=servers, connect_timeout=3, max_reconnect_attempts=1,
                              reconnect_time_wait=0.1, error_cb=quiet,
                              name="pbxsms-doctor")


async def _nats(config: Config) -> Finding:
    servers, explicit = nats_servers(config)
    where = hide_url_password(",".join(servers))
    try:
        nc = await _connect(config)
    except Exception as error:
        fix = ("check NATS_URL (host, port, user and password) and that the NATS servers "
               "run" if explicit else
               "NATS_URL is unset, so pbxsms runs an embedded server while `pbxsms serve` "
               "runs: start it (or run doctor while it runs), or check "
               "PBXSMS_EMBEDDED_NATS_PORT")
        return fail(f"cannot connect to {where}: {type(error).__name__}: {error}", fix)
    await nc.close()
    return ok(f"connected to {where}")


async def _stream(config: Config) -> Finding:
    name = config.file.bus.stream
    try:
        nc = await _connect(config)
    except Exception:
        return fail("not checked: NATS is not reachable", "fix the nats check first")
    try:
        info = await nc.jetstream().stream_info(name)
    except NotFoundError:
        return fail(f"stream {name} does not exist",
                    "start `pbxsms serve` once: it creates the stream and buckets")
    except Exception as error:
        return fail(f"cannot read stream {name}: {type(error).__name__}: {error}",
                    "JetStream must be enabled on the NATS servers (see deploy/nats/)")
    finally:
        await nc.close()
    replicas = info.config.num_replicas or 1
    wanted = config.file.bus.replicas
    detail = f"{name}: {info.state.messages} messages, {replicas} replica(s)"
    if replicas != wanted:
        return warn(detail, f"[bus] replicas is {wanted}: restart `pbxsms serve` to apply it")
    return ok(detail)
