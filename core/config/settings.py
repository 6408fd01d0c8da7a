"""Settings: the environment and `.env` (secrets), the TOML file (everything else).

Precedence, highest first: environment, `.env`, the TOML file, defaults. Plugins bring
their own settings models (`settings_model` hook); this module owns the core's.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from pbxsms.core.config.durations import Duration
from pbxsms.core.config.problems import ConfigError, Problem, problems_from_validation

DEFAULT_ENABLED = ["clicksend", "email", "mobileapp"]

S = TypeVar("S", bound=BaseSettings)


class PluginNotLoaded(LookupError):
    """`Config.plugin` asked for settings that no enabled plugin loaded, or of another type."""


class PluginSettings(BaseSettings):
    """Base of every settings model: environment beats `.env`, which beats the TOML file."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, env_ignore_empty=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return env_settings, dotenv_settings, init_settings, file_secret_settings


class CoreSettings(PluginSettings):
    """The core's environment settings (PBXSMS_* and NATS_URL)."""

    model_config = SettingsConfigDict(env_prefix="PBXSMS_", extra="ignore", case_sensitive=False)

    nats_url: str | None = Field(None, validation_alias=AliasChoices("NATS_URL", "nats_url"))
    config: Path = Path("config/pbxsms.toml")
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    public_url: str | None = None
    data_dir: Path = Path("./var")
    api_token: SecretStr | None = None
    default_region: str = Field("US", min_length=2, max_length=2)
    embedded_nats_port: int = Field(4222, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    def nats_servers(self) -> list[str]:
        """NATS_URL as a server list (a comma list is a cluster)."""
        if not self.nats_url:
            return []
        return [url.strip() for url in self.nats_url.split(",") if url.strip()]


class BusConfig(BaseModel):
    """`[bus]`: the JetStream stream and the retry policy shared by every consumer."""

    model_config = ConfigDict(extra="forbid")

    stream: str = Field("SMS", pattern=r"^[A-Za-z0-9_-]+$")
    max_age: Duration = 14 * 86400.0
    # The stream's size on disk at most ("2GiB", "500MB" or bytes): full, it refuses new
    # events (the webhook answers 503, the carrier retries) rather than dropping old ones.
    # About 1 KiB per event, 4 to 6 events per message. It must fit in JetStream's storage.
    max_bytes: ByteSize = Field(ByteSize(2 * 2**30), gt=0)
    # How long the number a customer texted is remembered for the reply, since the last text.
    conversation_ttl: Duration = Field(90 * 86400.0, gt=0)
    duplicate_window: Duration = 24 * 3600.0
    replicas: int = Field(1, ge=1, le=5)
    publish_timeout: Duration = 5.0
    ack_wait: Duration = 30.0
    max_deliver: int = Field(10, ge=1)
    backoff_initial: Duration = 1.0
    backoff_max: Duration = 300.0
    max_in_flight: int = Field(64, ge=1)
    # Status history entries kept per message (the first and the newest); the rest are
    # dropped and counted, so a flood of receipts cannot grow a record past NATS's limit.
    status_history: int = Field(200, ge=10, le=5000)


class HttpConfig(BaseModel):
    """`[http]`: the listener's limits against slow and idle clients (applied at start;
    a reverse proxy in front is still expected)."""

    model_config = ConfigDict(extra="forbid")

    # A connection must deliver a request's headers this long after it opens or after
    # its previous answer, else it is closed (idle connections too).
    header_timeout: Duration = Field(10.0, gt=0, le=3600)
    # A request's body must have arrived this long after its headers, else 408.
    body_timeout: Duration = Field(10.0, gt=0, le=3600)
    # Open connections at most; beyond it an idle one is closed, else the new one is 503.
    max_connections: int = Field(1000, ge=1)


class OutboundConfig(BaseModel):
    """`[outbound]`: what the core accepts to send, whatever the provider."""

    model_config = ConfigDict(extra="forbid")

    # ClickSend truncates beyond 6 parts on many accounts (918 GSM-7 / 402 UCS-2 characters).
    max_segments: int = Field(6, ge=1, le=255)


class PluginsConfig(BaseModel):
    """`[plugins]`: which plugins run."""

    model_config = ConfigDict(extra="forbid")

    enabled: list[str] = Field(default_factory=lambda: list(DEFAULT_ENABLED))


class FileConfig(BaseModel):
    """The TOML file. Unknown top-level tables are plugin sections (e.g. `[clicksend]`)."""

    model_config = ConfigDict(extra="allow")

    plugins: PluginsConfig = Field(default_factory=PluginsConfig)
    bus: BusConfig = Field(default_factory=BusConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    outbound: OutboundConfig = Field(default_factory=OutboundConfig)
    numbers: list[dict[str, Any]] = Field(default_factory=list)

    def section(self, name: str) -> dict[str, Any]:
        """A plugin's own table, empty when absent."""
        value = (self.model_extra or {}).get(name, {})
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Config:
    """Everything a running gateway reads, replaced whole on reload."""

    core: CoreSettings
    file: FileConfig
    plugins: dict[str, BaseSettings] = field(default_factory=dict)
    env_file: Path | None = None

    def plugin(self, name: str, model: type[S]) -> S:
        """The settings of the enabled plugin `name`, checked to be a `model`."""
        settings = self.plugins.get(name)
        if settings is None:
            loaded = ", ".join(sorted(self.plugins)) or "none"
            raise PluginNotLoaded(f"plugin {name!r} has no settings loaded: it is not "
                                  f"enabled or has no settings model (loaded: {loaded})")
        if not isinstance(settings, model):
            raise PluginNotLoaded(f"plugin {name!r} has settings of type "
                                  f"{type(settings).__name__}, not {model.__name__}")
        return settings


def default_env_file() -> Path | None:
    """`.env` in the working folder, or PBXSMS_ENV_FILE; None when it does not exist."""
    path = Path(os.environ.get("PBXSMS_ENV_FILE", ".env"))
    return path if path.is_file() else None


def load_core(env_file: Path | None) -> CoreSettings:
    """The core settings, or ConfigError naming each bad setting."""
    try:
        return CoreSettings(_env_file=env_file)
    except ValidationError as error:
        raise ConfigError(problems_from_validation(error, CoreSettings)) from None


def load_file(path: Path) -> FileConfig:
    """The TOML file; a missing file means all defaults."""
    if not path.exists():
        return FileConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError([Problem(str(path), f"cannot read TOML: {error}")]) from None
    try:
        return FileConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(problems_from_validation(error, FileConfig, where="toml")) from None


def load_plugin_settings(
    model: type[BaseSettings], section: dict[str, Any], env_file: Path | None, name: str
) -> tuple[BaseSettings | None, list[Problem]]:
    """A plugin's settings from its TOML table, `.env` and the environment."""
    try:
        return model(_env_file=env_file, **section), []
    except ValidationError as error:
        return None, problems_from_validation(error, model)
