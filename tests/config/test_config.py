"""Settings and `pbxsms config check`: problems named by setting, secrets never printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pbxsms.core.config.problems import ConfigError
from pbxsms.plugins.clicksend.settings import ClickSendSettings
from tests.helpers import make_config, write_env

PBXSMS = [sys.executable, "-c", "from pbxsms.core.cli import main; main()"]
SECRET = "D83DED51-9E35-4D42-9BB9-0E34B7CA85AE"


def config_check(tmp_path: Path, toml: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pbxsms.toml").write_text(toml)
    write_env(tmp_path / ".env", **env)
    return subprocess.run(
        [*PBXSMS, "config", "check", "--env-file", str(tmp_path / ".env"),
         "--config", str(tmp_path / "pbxsms.toml")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**os.environ, "PBXSMS_ENV_FILE": os.devnull})


def test_config_check_names_missing_api_key(tmp_path: Path) -> None:
    result = config_check(tmp_path, CLICKSEND_USERNAME="acme")
    assert result.returncode != 0
    assert "CLICKSEND_API_KEY" in result.stdout
    assert "cannot go out" in result.stdout


def test_config_check_never_prints_secrets(tmp_path: Path) -> None:
    result = config_check(
        tmp_path, CLICKSEND_USERNAME="acme", CLICKSEND_API_KEY=SECRET,
        CLICKSEND_WEBHOOK_TOKEN="tok-very-secret", PBXSMS_API_TOKEN="api-very-secret",
        PBXSMS_SMTP_HOST="mail", PBXSMS_SMTP_PASSWORD="smtp-very-secret",
        RINGOTEL_API_URL="https://app.example", RINGOTEL_API_TOKEN="ring-very-secret",
        RINGOTEL_WEBHOOK_TOKEN="ringhook-very-secret", PBXSMS_PUBLIC_URL="https://sms.example",
        NATS_URL="nats://user:natspass-secret@127.0.0.1:4222,nats://natstoken-secret@h2:4222",
        CLICKSEND_BASE_URL="https://rest.example/?key=cskey-secret&mode=x")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for secret in (SECRET, "tok-very-secret", "api-very-secret", "smtp-very-secret",
                   "ring-very-secret", "ringhook-very-secret", "natspass-secret",
                   "natstoken-secret", "cskey-secret"):
        assert secret not in output
    assert "CLICKSEND_API_KEY = (set, hidden)" in output
    assert "NATS_URL = nats://user:***@127.0.0.1:4222,nats://***@h2:4222" in output
    assert "CLICKSEND_BASE_URL = https://rest.example/?key=***&mode=***" in output
    assert "OK: no problems found" in output


def test_config_check_lists_each_invalid_setting(tmp_path: Path) -> None:
    result = config_check(tmp_path, '[bus]\nmax_age = "forever"\n',
                          PBXSMS_HTTP_PORT="eighty")
    assert result.returncode == 2
    assert "PBXSMS_HTTP_PORT" in result.stderr
    # Core settings are checked first; fix them and the TOML problem is named next.
    result = config_check(tmp_path, '[bus]\nmax_age = "forever"\n')
    assert result.returncode == 2
    assert "toml.bus.max_age" in result.stderr


def test_unknown_plugin_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        make_config(tmp_path, '[plugins]\nenabled = ["clicksend", "plivo"]\n')
    assert "'plivo'" in str(raised.value) and "available" in str(raised.value)


def test_environment_beats_dotenv_beats_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    toml = '[clicksend]\nbase_url = "http://from-toml"\nsubaccount_id = "1"\n'
    config, _ = make_config(tmp_path, toml, {"CLICKSEND_BASE_URL": "http://from-dotenv"})
    assert config.plugin("clicksend", ClickSendSettings).base_url == "http://from-dotenv"
    assert config.plugin("clicksend", ClickSendSettings).subaccount_id == "1"
    monkeypatch.setenv("CLICKSEND_BASE_URL", "http://from-env")
    config, _ = make_config(tmp_path, toml, {"CLICKSEND_BASE_URL": "http://from-dotenv"})
    assert config.plugin("clicksend", ClickSendSettings).base_url == "http://from-env"


def test_durations_and_defaults(tmp_path: Path) -> None:
    config, _ = make_config(tmp_path, '[bus]\nmax_age = "7d"\nduplicate_window = "90m"\n')
    assert config.file.bus.max_age == 7 * 86400
    assert config.file.bus.duplicate_window == 5400
    config, _ = make_config(tmp_path)
    assert config.file.bus.max_age == 14 * 86400
    assert config.file.bus.duplicate_window == 24 * 3600
    assert config.file.plugins.enabled == ["clicksend", "email", "mobileapp"]


def test_shipped_sample_config_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [*PBXSMS, "config", "check", "--config", str(root / "config" / "pbxsms.example.toml"),
         "--env-file", str(root / "config" / ".env.example")],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PBXSMS_ENV_FILE": os.devnull})
    assert "Configuration problems" not in result.stderr, result.stderr
    assert "plugins enabled: clicksend, email, mobileapp, console" in result.stdout


def test_every_command_names_a_bad_setting_without_a_traceback(tmp_path: Path) -> None:
    for command in (["plugins"], ["reload"]):
        result = subprocess.run(
            [*PBXSMS, *command], capture_output=True, text=True, timeout=60, cwd=tmp_path,
            env={**os.environ, "PBXSMS_ENV_FILE": os.devnull, "PBXSMS_HTTP_PORT": "abc"})
        assert result.returncode == 2, command
        assert "PBXSMS_HTTP_PORT" in result.stderr and "Traceback" not in result.stderr


NATIONAL = '[[numbers]]\nnumber = "0411 111 111"\nprovider = "clicksend"\nextension = "201"\n'


def test_config_check_refuses_a_national_number_read_in_the_wrong_region(
        tmp_path: Path) -> None:
    result = config_check(tmp_path, NATIONAL, PBXSMS_DEFAULT_REGION="US")
    assert result.returncode == 2, result.stdout + result.stderr
    # The row, how it was read (the region), and the fix; never phonenumbers' own text.
    assert ("toml.numbers[0].number: '0411 111 111' read as +10411111111 "
            "(PBXSMS_DEFAULT_REGION=US) is not valid: write +61411111111 or set "
            "PBXSMS_DEFAULT_REGION=AU") in result.stderr
    assert "NumberParseException" not in result.stderr


def test_config_check_lists_each_number_as_read(tmp_path: Path) -> None:
    result = config_check(tmp_path, NATIONAL, PBXSMS_DEFAULT_REGION="AU")
    assert "numbers in config file: 1 (read with PBXSMS_DEFAULT_REGION=AU)" in result.stdout
    assert ("toml.numbers[0]: '0411 111 111' -> +61411111111 (clicksend, extension 201)"
            in result.stdout)


def test_a_possible_but_invalid_international_number_is_refused(tmp_path: Path) -> None:
    toml = NATIONAL.replace("0411 111 111", "+1 555 123 4567")
    result = config_check(tmp_path, toml)
    assert result.returncode == 2
    assert ("toml.numbers[0].number: '+1 555 123 4567' is not a valid number in its "
            "country (+1, US): check the digits") in result.stderr
