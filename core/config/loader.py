"""Reading the whole configuration: core settings, the TOML file, each plugin's settings."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from pbxsms.core.config.problems import ConfigError, Problem, env_name
from pbxsms.core.config.settings import (
    Config,
    S,
    default_env_file,
    load_core,
    load_file,
    load_plugin_settings,
)
from pbxsms.core.model.numbers import NumberError, NumberSettings, parse_rows
from pbxsms.core.plugins import Plugins


def load_config(env_file: Path | None = None, config_path: Path | None = None,
                plugins: Plugins | None = None) -> tuple[Config, Plugins]:
    """Read everything, or raise ConfigError listing every problem by setting name."""
    env_file = env_file if env_file is not None else default_env_file()
    core = load_core(env_file)
    if config_path is not None:
        core = core.model_copy(update={"config": config_path})
    file = load_file(core.config)
    plugins = plugins if plugins is not None else Plugins(file.plugins.enabled)
    problems: list[Problem] = []
    settings: dict[str, BaseSettings] = {}
    for name, model in plugins.settings_models().items():
        value, found = load_plugin_settings(model, file.section(name), env_file, name)
        problems.extend(found)
        if value is not None:
            settings[name] = value
    try:
        # Checked here so that a bad table stops `serve` and `config check`, and a reload
        # that would bring one is rejected whole. Providers are confirmed at start.
        parse_rows(file.numbers, core.default_region, plugins.enabled, where="toml.numbers",
                   known="enabled plugins")
    except NumberError as error:
        problems.append(Problem(error.field, error.message))
    if problems:
        raise ConfigError(problems)
    return Config(core=core, file=file, plugins=settings, env_file=env_file), plugins


def create_from_example(path: Path) -> Path | None:
    """Copy `<name>.example.toml` beside `path` to `path` when `path` is missing (a fresh
    clone ships only the example); the example copied, or None."""
    example = path.with_name(f"{path.stem}.example{path.suffix}")
    if path.exists() or not example.is_file():
        return None
    try:
        with path.open("x") as created:  # never over a file made meanwhile
            created.write(example.read_text())
    except FileExistsError:
        return None
    return example


def file_numbers(config: Config, plugins: Plugins) -> list[NumberSettings]:
    """The `[[numbers]]` rows of a loaded configuration, normalised (already validated)."""
    return parse_rows(config.file.numbers, config.core.default_region, plugins.enabled,
                      where="toml.numbers", known="enabled plugins")


def describe_number(index: int, row: object, record: NumberSettings) -> str:
    """One line per number for `config check` and `doctor`: as written, as read."""
    written = row.get("number") if isinstance(row, dict) else None
    to = f"extension {record.extension}" if record.extension else "no extension"
    if record.domain:
        to += f"@{record.domain}"
    disabled = "" if record.enabled else ", disabled"
    return (f"toml.numbers[{index}]: {written!r} -> {record.number} "
            f"({record.provider}, {to}{disabled})")


def load_plugin_only(name: str, model: type[S], env_file: Path | None = None,
                     config_path: Path | None = None) -> S:
    """One plugin's settings, for its own commands, whether or not it is enabled;
    ConfigError naming each bad setting."""
    env_file = env_file if env_file is not None else default_env_file()
    core = load_core(env_file)
    file = load_file(config_path or core.config)
    value, problems = load_plugin_settings(model, file.section(name), env_file, name)
    if not isinstance(value, model):
        raise ConfigError(problems)
    return value


def redacted(settings: BaseSettings) -> dict[str, str]:
    """A settings object as env-name → printable value, every secret masked."""
    shown: dict[str, str] = {}
    for field, value in settings:
        name = env_name(type(settings), field)
        if isinstance(value, SecretStr):
            shown[name] = "(set, hidden)" if value.get_secret_value() else "(empty)"
        elif value is None:
            shown[name] = "(unset)"
        else:
            shown[name] = hide_url_password(str(value))
    return shown


# The credentials of a URL: `user:password@` (the password hidden) or `token@` (all
# hidden: NATS takes a bare token there).
_USERINFO = re.compile(r"(://)(?:([^:/@,?#]*):)?([^/@,?#]+)@")
# A query value: API keys and tokens travel there (`?key=...`).
_QUERY_VALUE = re.compile(r"([?&][^=&#,]*=)[^&#,]*")


def hide_url_password(text: str) -> str:
    """Every URL of `text` (a comma list too) without its secrets: `nats://user:***@host`,
    `nats://***@host` for a token, and `?key=***` for each query value."""

    def userinfo(match: re.Match[str]) -> str:
        user = match.group(2)
        return f"{match.group(1)}{user}:***@" if user is not None else f"{match.group(1)}***@"

    return _QUERY_VALUE.sub(r"\1***", _USERINFO.sub(userinfo, text))
