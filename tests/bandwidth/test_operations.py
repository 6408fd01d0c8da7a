"""The operator's side of Bandwidth: `config check` hides the secrets, `pbxsms doctor`
names each fault with its fix, `pbxsms bandwidth webhook-url` prints the URL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from pbxsms.core.health.doctor import run_doctor
from pbxsms.sim.bandwidth import BandwidthSimulator
from tests.support.bandwidth import CALLBACK_PASSWORD, bandwidth_env, toml
from tests.support.carriers import assert_fixes, plugin_files, run_cli, simulator_banner
from tests.support.gateway import Gateway

StartGateway = Callable[..., Awaitable[Gateway]]


def files(tmp_path: Path, **env: str) -> list[str]:
    return plugin_files(tmp_path, "bandwidth", **env)


async def test_config_check_hides_the_secrets(tmp_path: Path) -> None:
    result = await run_cli("config", "check", *files(
        tmp_path, BANDWIDTH_CLIENT_SECRET="cl1ent-s3cret",
        BANDWIDTH_CALLBACK_PASSWORD=CALLBACK_PASSWORD))
    assert "BANDWIDTH_CLIENT_SECRET = (set, hidden)" in result.output
    assert "BANDWIDTH_CALLBACK_PASSWORD = (set, hidden)" in result.output
    assert "cl1ent-s3cret" not in result.output and CALLBACK_PASSWORD not in result.output
    assert "BANDWIDTH_ACCOUNT_ID: unset" in result.output
    assert "BANDWIDTH_CALLBACK_USERNAME: unset: every Bandwidth callback" in result.output
    assert result.exit_code == 1


async def test_webhook_url_prints_the_public_route(tmp_path: Path) -> None:
    result = await run_cli("bandwidth", "webhook-url", *files(
        tmp_path, PBXSMS_PUBLIC_URL="https://sms.example.com",
        BANDWIDTH_CALLBACK_USERNAME="u", BANDWIDTH_CALLBACK_PASSWORD=CALLBACK_PASSWORD))
    assert result.exit_code == 0, result.output
    assert "  https://sms.example.com/webhook/bandwidth\n" in result.output
    assert CALLBACK_PASSWORD not in result.output


async def test_doctor_passes_then_names_each_fault(start_gateway: StartGateway,
                                                   bandwidth: BandwidthSimulator) -> None:
    good = await start_gateway(toml=toml(), env=bandwidth_env(
        bandwidth, PBXSMS_PUBLIC_URL="https://sms.example.com"))
    lines: list[str] = []
    assert await run_doctor(good.runtime.config, good.runtime.plugins, lines.append)
    output = "\n".join(lines)
    assert "ok    bandwidth: OAuth client accepted" in output, output
    assert "ok    bandwidth callbacks: callback credentials set; set the application's " \
           "callback URLs to https://sms.example.com/webhook/bandwidth" in output, output
    assert bandwidth.send_requests == []

    bad = await start_gateway(toml=toml(), env=bandwidth_env(
        bandwidth, BANDWIDTH_CLIENT_SECRET="wrong-secret", BANDWIDTH_CALLBACK_PASSWORD=""))
    lines = []
    assert not await run_doctor(bad.runtime.config, bad.runtime.plugins, lines.append)
    assert_fixes(lines, {"FAIL  bandwidth: OAuth client refused": "BANDWIDTH_CLIENT_SECRET",
                         "FAIL  bandwidth callbacks: BANDWIDTH_CALLBACK_USERNAME/PASSWORD":
                         "callback credentials"})
    assert "wrong-secret" not in "\n".join(lines)


async def test_the_simulator_command_serves() -> None:
    first, second = await simulator_banner("bandwidth")
    assert first.startswith(b"Bandwidth simulator on http://127.0.0.1:")
    assert b"BANDWIDTH_BASE_URL=" in second and b"BANDWIDTH_TOKEN_URL=" in second
