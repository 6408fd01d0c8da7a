"""Bandwidth settings: `BANDWIDTH_*` in Bandwidth's own words (account, application, OAuth
client, callback credentials).

Secrets come from the environment or `.env`; the sending tuning may also sit in the
`[bandwidth]` table of the TOML file.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from pbxsms.core.plugin_api import (
    Config,
    Duration,
    PluginSettings,
)

NAME = "bandwidth"


class BandwidthSettings(PluginSettings):
    """Outbound auth is an OAuth2 client (client credentials); inbound auth is the Basic
    credentials set on the Messaging application's callbacks."""

    model_config = SettingsConfigDict(env_prefix="BANDWIDTH_", extra="ignore",
                                      case_sensitive=False)

    account_id: str | None = None
    application_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    callback_username: str | None = None
    callback_password: SecretStr | None = None
    base_url: str = Field("https://messaging.bandwidth.com/api/v2", pattern=r"^https?://")
    token_url: str = Field("https://api.bandwidth.com/api/v1/oauth2/token",
                           pattern=r"^https?://")

    # Client-side limit of send calls per second (one message each). Bandwidth counts
    # segments per account; its 429 names the account's allowed rate.
    requests_per_second: float = Field(10.0, gt=0, le=1000)
    # A send whose answer was lost: sent again (at-least-once, may duplicate) or marked
    # `unknown` (at-most-once). Bandwidth documents no idempotency key.
    on_ambiguous: Literal["retry", "unknown"] = "unknown"
    timeout: Duration = Field(15.0, gt=0, le=300)
    auth_retry_interval: Duration = Field(300.0, ge=1)

    @property
    def can_send(self) -> bool:
        return bool(self.account_id and self.application_id and self.client_id
                    and self.secret)

    @property
    def secret(self) -> str:
        return self.client_secret.get_secret_value() if self.client_secret else ""

    @property
    def callback_secret(self) -> str:
        return self.callback_password.get_secret_value() if self.callback_password else ""


def bandwidth_settings(config: Config) -> BandwidthSettings:
    """Read per call: a reload replaces the whole Config."""
    return config.plugin(NAME, BandwidthSettings)
