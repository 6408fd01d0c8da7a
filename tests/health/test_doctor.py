"""`pbxsms doctor` against real services: a good configuration passes, a bad one names
each fault with its fix; plugins add checks through the `doctor_checks` hook."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner
from pydantic import SecretStr

from pbxsms.core.cli import cli
from pbxsms.core.config.loader import load_config
from pbxsms.core.config.settings import Config
from pbxsms.core.health.doctor import Check, Finding, fail, run_doctor
from pbxsms.core.hookspecs import hookimpl
from pbxsms.core.plugins import Plugins
from pbxsms.sim.clicksend import ClickSendSimulator
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.helpers import free_port, write_env
from tests.support.delivery import APP_TOKEN, HOOK_TOKEN
from tests.support.gateway import Gateway
from tests.support.smtp import SmtpServer

StartGateway = Callable[..., Awaitable[Gateway]]
PLUGINS = '[plugins]\nenabled = ["clicksend", "email", "mobileapp"]\n'


def settings(clicksend: ClickSendSimulator, smtp_port: int, app: MobileAppSimulator,
             key: str = "pbx-key", app_token: str = APP_TOKEN) -> dict[str, str]:
    return {"PBXSMS_API_TOKEN": "api-token", "PBXSMS_PUBLIC_URL": "https://sms.example.com",
            "CLICKSEND_USERNAME": "pbx-user", "CLICKSEND_API_KEY": key,
            "CLICKSEND_BASE_URL": clicksend.base_url, "CLICKSEND_WEBHOOK_TOKEN": "cs-secret",
            "PBXSMS_SMTP_HOST": "127.0.0.1", "PBXSMS_SMTP_PORT": str(smtp_port),
            "RINGOTEL_API_URL": app.api_url, "RINGOTEL_API_TOKEN": app_token,
            "RINGOTEL_WEBHOOK_TOKEN": HOOK_TOKEN}


def listening(gateway: Gateway) -> Config:
    """The gateway's configuration with the port it listens on (tests take a free one)."""
    config = gateway.runtime.config
    return replace(config, core=config.core.model_copy(
        update={"http_port": gateway.server.port}))


async def doctor(config: Config, plugins: Plugins) -> tuple[bool, str]:
    lines: list[str] = []
    healthy = await run_doctor(config, plugins, lines.append)
    return healthy, "\n".join(lines)


async def test_a_good_configuration_passes_every_check(
        start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer) -> None:
    async with ClickSendSimulator() as clicksend:
        clicksend.add_account("pbx-user", "pbx-key")
        gateway = await start_gateway(toml=PLUGINS,
                                      env=settings(clicksend, smtp.port, app))
        healthy, output = await doctor(listening(gateway), gateway.runtime.plugins)
    assert healthy, output
    for name in ("settings", "numbers", "nats", "stream", "api", "clicksend",
                 "clicksend webhooks", "email", "mobileapp"):
        assert f"ok    {name}: " in output, output
    assert "FAIL" not in output and "warn" not in output, output
    # Only GET /v3/account was asked of ClickSend, and nothing pushed into the app.
    assert [(r.method, r.path) for r in clicksend.requests] == [("GET", "/v3/account")]
    assert app.pushes == [] and smtp.mailbox.mails == []


async def test_a_bad_configuration_names_each_fault_and_its_fix(
        start_gateway: StartGateway, app: MobileAppSimulator) -> None:
    async with ClickSendSimulator() as clicksend:
        clicksend.add_account("pbx-user", "pbx-key")
        closed = free_port()
        gateway = await start_gateway(toml=PLUGINS, env=settings(
            clicksend, closed, app, key="wrong-key", app_token="wrong-token"))
        config = gateway.runtime.config
        bad_nats = replace(config, core=config.core.model_copy(
            update={"nats_url": f"nats://pbxsms:s3cret@127.0.0.1:{free_port()}"}))
        healthy, output = await doctor(bad_nats, gateway.runtime.plugins)
    assert not healthy
    expected = {
        "FAIL  nats: cannot connect to nats://pbxsms:***@127.0.0.1": "check NATS_URL",
        "FAIL  stream: not checked": "fix the nats check first",
        "FAIL  clicksend: credentials refused (401)": "CLICKSEND_API_KEY",
        "FAIL  email: cannot reach SMTP 127.0.0.1": "PBXSMS_SMTP_PORT",
        "FAIL  mobileapp: app API": "check RINGOTEL_API_TOKEN",
    }
    lines = output.splitlines()
    for start, fix in expected.items():
        found = [n for n, line in enumerate(lines) if line.startswith(start)]
        assert len(found) == 1, (start, output)
        at = found[0]
        assert lines[at + 1].startswith("      fix: ") and fix in lines[at + 1], output
    for secret in ("wrong-key", "wrong-token", "s3cret", "cs-secret", "api-token"):
        assert secret not in output


def test_the_command_exits_1_on_problems_and_2_on_unusable_settings(tmp_path: Path) -> None:
    config = tmp_path / "pbxsms.toml"
    config.write_text(PLUGINS)
    env = write_env(tmp_path / ".env", PBXSMS_DATA_DIR=str(tmp_path / "var"),
                    NATS_URL=f"nats://127.0.0.1:{free_port()}",
                    PBXSMS_SMTP_HOST="127.0.0.1", PBXSMS_SMTP_PORT=str(free_port()))
    runner = CliRunner()
    result = runner.invoke(cli, ["doctor", "--env-file", str(env), "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert "FAIL  nats: " in result.output and "FAIL  clicksend: credentials unset" in \
        result.output
    assert result.output.rstrip().endswith("doctor: problems found (see FAIL above)")

    env.write_text(env.read_text() + "PBXSMS_SMTP_PORT=not-a-port\n")
    result = runner.invoke(cli, ["doctor", "--env-file", str(env), "--config", str(config)])
    assert result.exit_code == 2 and "PBXSMS_SMTP_PORT" in result.output


class Probe:
    """A plugin with one check that fails and one that breaks."""

    @hookimpl
    def doctor_checks(self, config: Config) -> list[Check]:
        async def refused() -> Finding:
            return fail(f"probe refused {config.file.bus.stream}", "set PROBE_KEY")

        async def broken() -> Finding:
            raise ValueError("boom")

        return [Check("probe", refused), Check("probe broken", broken)]


async def test_hook_doctor_checks(start_gateway: StartGateway) -> None:
    plugins = Plugins([])
    plugins.register(Probe(), "probe")
    gateway = await start_gateway(plugins=plugins)
    names = [check.name for check in plugins.doctor_checks(gateway.runtime.config)]
    assert names == ["nats", "stream", "api", "probe", "probe broken"], \
        "core checks come first"
    healthy, output = await doctor(gateway.runtime.config, plugins)
    assert not healthy
    assert "ok    nats: connected to" in output and "ok    stream: SMS: " in output
    assert "FAIL  probe: probe refused SMS\n      fix: set PROBE_KEY" in output
    assert "FAIL  probe broken: the check itself failed: ValueError: boom" in output


class Logins:
    """aiosmtpd authenticator: one user, one password."""

    def __call__(self, server: object, session: object, envelope: object, mechanism: str,
                 auth_data: object) -> AuthResult:
        good = isinstance(auth_data, LoginPassword) and (
            auth_data.login, auth_data.password) == (b"pbx", b"mail-s3cret")
        # handled=False: aiosmtpd answers a failure with 535 itself.
        return AuthResult(success=good, handled=False)


async def test_the_smtp_check_logs_in_when_a_user_is_set(tmp_path: Path) -> None:
    port = free_port()
    controller = Controller(Sink(), hostname="127.0.0.1", port=port, authenticator=Logins(),
                            auth_require_tls=False)
    await asyncio.to_thread(controller.start)
    try:
        findings = []
        for password in ("mail-s3cret", "wrong"):
            toml = tmp_path / f"{password}.toml"
            toml.write_text('[plugins]\nenabled = ["email"]\n')
            env = write_env(tmp_path / f"{password}.env", PBXSMS_SMTP_HOST="127.0.0.1",
                            PBXSMS_SMTP_PORT=str(port), PBXSMS_SMTP_USERNAME="pbx",
                            PBXSMS_SMTP_PASSWORD=password)
            config, plugins = load_config(env, toml)
            (check,) = [c for c in plugins.doctor_checks(config) if c.name == "email"]
            findings.append(await check.run())
    finally:
        await asyncio.to_thread(controller.stop)
    good, bad = findings
    assert good.status == "ok" and "logged in as pbx" in good.detail, good
    assert bad.status == "fail" and "refused the login" in bad.detail, bad
    assert bad.fix is not None and "PBXSMS_SMTP_PASSWORD" in bad.fix
    assert "wrong" not in bad.detail + bad.fix


class Sink:
    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "250 OK"


async def test_doctor_checks_the_subaccount_and_the_cli_token_against_the_real_ones(
        start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer) -> None:
    async with ClickSendSimulator() as clicksend:
        clicksend.add_account("pbx-user", "pbx-key")
        gateway = await start_gateway(toml=PLUGINS, env={
            **settings(clicksend, smtp.port, app), "CLICKSEND_SUBACCOUNT_ID": "424242"})
        config = listening(gateway)
        wrong_token = replace(config, core=config.core.model_copy(
            update={"api_token": SecretStr("not-the-gateways")}))
        healthy, output = await doctor(wrong_token, gateway.runtime.plugins)
    assert not healthy
    mine = str(clicksend.accounts["pbx-user"].subaccount_id)
    assert ("CLICKSEND_SUBACCOUNT_ID 424242 is not one of the account's subaccounts "
            in output) and mine in output, output
    assert f"FAIL  api: the gateway at {gateway.url} refuses this PBXSMS_API_TOKEN" in output
    assert "not-the-gateways" not in output and "pbx-key" not in output


async def test_the_smtp_check_gives_up_after_3_seconds(tmp_path: Path) -> None:
    silent = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        toml = tmp_path / "pbxsms.toml"
        toml.write_text('[plugins]\nenabled = ["email"]\n')
        env = write_env(tmp_path / ".env", PBXSMS_SMTP_HOST="127.0.0.1",
                        PBXSMS_SMTP_PORT=str(port), PBXSMS_SMTP_TIMEOUT="60")
        config, plugins = load_config(env, toml)
        (check,) = [c for c in plugins.doctor_checks(config) if c.name == "email"]
        started = time.monotonic()
        finding = await check.run()
        took = time.monotonic() - started
    finally:
        silent.close()
    assert finding.status == "fail", finding
    assert 2.5 < took < 5.0, took


def test_doctor_prints_no_nats_token_and_no_key_in_a_url(tmp_path: Path) -> None:
    config = tmp_path / "pbxsms.toml"
    config.write_text(PLUGINS)
    port = free_port()
    env = write_env(tmp_path / ".env", PBXSMS_DATA_DIR=str(tmp_path / "var"),
                    NATS_URL=f"nats://natstoken-secret@127.0.0.1:{port},"
                             f"nats://u:natspass-secret@127.0.0.1:{port}",
                    RINGOTEL_API_URL=f"http://127.0.0.1:{free_port()}/api?key=ringkey-secret",
                    CLICKSEND_BASE_URL=f"http://127.0.0.1:{free_port()}/?api_key=cskey-secret")
    result = CliRunner().invoke(cli, ["doctor", "--env-file", str(env), "--config",
                                      str(config)])
    assert "FAIL  nats: " in result.output, result.output
    for secret in ("natstoken-secret", "natspass-secret", "ringkey-secret", "cskey-secret"):
        assert secret not in result.output, result.output
