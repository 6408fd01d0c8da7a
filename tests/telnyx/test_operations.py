"""The operator's side of Telnyx: `config check` hides the API key, `pbxsms doctor` names
each fault with its fix, `pbxsms telnyx webhook-url` prints the URL, the simulator runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from pbxsms.core.health.doctor import run_doctor
from pbxsms.sim.telnyx import PROFILES_PATH, TelnyxSimulator
from tests.support.carriers import assert_fixes, plugin_files, run_cli, simulator_banner
from tests.support.gateway import Gateway
from tests.support.telnyx import API_KEY, telnyx_env, toml

StartGateway = Callable[..., Awaitable[Gateway]]


def files(tmp_path: Path, **env: str) -> list[str]:
    return plugin_files(tmp_path, "telnyx", **env)


async def test_config_check_hides_the_api_key_and_names_what_is_missing(
        tmp_path: Path) -> None:
    result = await run_cli("config", "check", *files(tmp_path, TELNYX_API_KEY=API_KEY))
    assert "TELNYX_API_KEY = (set, hidden)" in result.output
    assert API_KEY not in result.output
    assert "TELNYX_PUBLIC_KEY: unset: every Telnyx webhook" in result.output
    assert result.exit_code == 1


async def test_webhook_url_prints_the_public_route(tmp_path: Path) -> None:
    result = await run_cli("telnyx", "webhook-url", *files(
        tmp_path, PBXSMS_PUBLIC_URL="https://sms.example.com/", TELNYX_PUBLIC_KEY="x"))
    assert result.exit_code == 0, result.output
    assert "  https://sms.example.com/webhook/telnyx\n" in result.output
    unset = await run_cli("telnyx", "webhook-url", *files(tmp_path))
    assert unset.exit_code == 2 and "PBXSMS_PUBLIC_URL" in unset.output


async def test_doctor_passes_on_a_good_setup(start_gateway: StartGateway,
                                             telnyx: TelnyxSimulator) -> None:
    gateway = await start_gateway(toml=toml(), env=telnyx_env(
        telnyx, PBXSMS_PUBLIC_URL="https://sms.example.com"))
    lines: list[str] = []
    await run_doctor(gateway.runtime.config, gateway.runtime.plugins, lines.append)
    output = "\n".join(lines)
    assert "ok    telnyx: API key accepted" in output, output
    assert "ok    telnyx webhooks: public key usable; set the messaging profile's webhook " \
           "URL to https://sms.example.com/webhook/telnyx" in output, output
    assert [(r.method, r.path) for r in telnyx.requests] == [("GET", PROFILES_PATH)]
    assert telnyx.sent_messages == []


async def test_doctor_names_each_fault_and_its_fix(start_gateway: StartGateway,
                                                   telnyx: TelnyxSimulator) -> None:
    gateway = await start_gateway(toml=toml(), env=telnyx_env(
        telnyx, TELNYX_API_KEY="wrong-key", TELNYX_PUBLIC_KEY="not-base64!",
        TELNYX_MESSAGING_PROFILE_ID="other"))
    lines: list[str] = []
    healthy = await run_doctor(gateway.runtime.config, gateway.runtime.plugins, lines.append)
    assert not healthy
    assert_fixes(lines, {"FAIL  telnyx: API key refused": "TELNYX_API_KEY",
                         "FAIL  telnyx webhooks: TELNYX_PUBLIC_KEY is not": "Public Key"})
    assert "wrong-key" not in "\n".join(lines)


async def test_the_simulator_command_serves_and_prints_its_public_key() -> None:
    first, second = await simulator_banner("telnyx")
    assert first.startswith(b"Telnyx simulator on http://127.0.0.1:")
    assert b"TELNYX_PUBLIC_KEY=" in second and b"TELNYX_BASE_URL=" in second
