"""Test helpers: free ports, waiting on conditions with deadlines, configs in tmp dirs,
Basic auth headers, the environment the gateway reads."""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from pbxsms.core.config.loader import load_config
from pbxsms.core.config.settings import Config, CoreSettings
from pbxsms.core.plugins import Plugins


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0,
    message: str = "condition",
) -> None:
    """Poll `condition` until true; fail the test with `message` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(0.02)


def write_env(path: Path, **values: str) -> Path:
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    return path


def make_config(
    tmp_path: Path, toml: str = "", env: dict[str, str] | None = None,
    plugins: Plugins | None = None,
) -> tuple[Config, Plugins]:
    """A full configuration read from files in `tmp_path`, as an operator would write them."""
    config_file = tmp_path / "pbxsms.toml"
    config_file.write_text(toml)
    values = {"PBXSMS_DATA_DIR": str(tmp_path / "var"), "PBXSMS_HTTP_PORT": "0",
              **(env or {})}
    env_file = write_env(tmp_path / ".env", **values)
    return load_config(env_file, config_file, plugins=plugins)


def basic_auth(user: str, key: str) -> str:
    """An HTTP Basic `Authorization` header value."""
    return "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()


def settings_env_names() -> tuple[tuple[str, ...], frozenset[str]]:
    """The environment the gateway reads: each settings model's `env_prefix` (the core's
    and every available plugin's) and the exact names of aliased fields (`NATS_URL`).
    Derived, so a new plugin's variables are known without listing them anywhere."""
    models: list[type[BaseSettings]] = [CoreSettings,
                                        *Plugins(None).settings_models().values()]
    prefixes: set[str] = set()
    names: set[str] = set()
    for model in models:
        prefix = model.model_config.get("env_prefix") or ""
        if prefix:
            prefixes.add(prefix.upper())
        for info in model.model_fields.values():
            alias = info.validation_alias
            choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
            names.update(choice.upper() for choice in choices if isinstance(choice, str))
    return tuple(sorted(prefixes)), frozenset(names)
