"""Console settings: the session signing key (a secret) and the login limits."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from pbxsms.core.plugin_api import Duration, PluginSettings


class ConsoleSettings(PluginSettings):
    """`PBXSMS_CONSOLE_SECRET` signs sessions; the rest may sit in `[console]`."""

    model_config = SettingsConfigDict(env_prefix="PBXSMS_CONSOLE_", extra="ignore",
                                      case_sensitive=False)

    secret: SecretStr | None = None
    # How long a login lasts; every instance accepts the cookie until then.
    session_ttl: Duration = Field(12 * 3600.0, ge=60, le=30 * 86400)
    # Failed logins allowed per address and per user name within `login_window`.
    login_attempts: int = Field(5, ge=1, le=1000)
    login_window: Duration = Field(300.0, ge=1, le=86400)
    # Live pages open at once (Server-Sent Events), per process.
    max_live: int = Field(200, ge=1, le=10000)

    @property
    def key(self) -> bytes | None:
        """The signing key, None when unset or too short to be one."""
        value = self.secret.get_secret_value() if self.secret else ""
        return value.encode() if len(value) >= 16 else None
