"""Bandwidth settings: `BANDWIDTH_*` in Bandwidth's own words (account, application, OAuth
client, callback credentials).

Secrets come from the environment or `.env`; the sending tuning may also sit in the
`[bandwidth]` table of the TOML file.
"""

from __future__ import annotations

import base64
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

    # MMS. Hosts an inbound message's `media[]` URLs may be fetched from (exact, or
    # `.domain`): Bandwidth's media API.
    media_hosts: list[str] = Field(default_factory=lambda: ["messaging.bandwidth.com"])
    # The API user whose Basic credentials download inbound media ("only accessed by you
    # when you supply your API user's username and password").
    media_username: str | None = None
    media_password: SecretStr | None = None
    # Only for the Bandwidth simulator: its origin (`http://127.0.0.1:8092`), whose media
    # links are fetched over http on loopback. Never set it for the real Bandwidth.
    media_simulator: str | None = Field(None, pattern=r"^https?://[^/]+$")

    @property
    def can_send(self) -> bool:
        return bool(self.account_id and self.application_id and self.client_id
                    and self.secret)

    @property
    def secret(self) -> str:
        return self.client_secret.get_secret_value() if self.client_secret else ""

    @property
    def media_authorization(self) -> str | None:
        """The `Authorization` of a media download, None without the API user."""
        if not (self.media_username and self.media_password):
            return None
        pair = f"{self.media_username}:{self.media_password.get_secret_value()}"
        return f"Basic {base64.b64encode(pair.encode()).decode()}"

    @property
    def callback_secret(self) -> str:
        return self.callback_password.get_secret_value() if self.callback_password else ""


def bandwidth_settings(config: Config) -> BandwidthSettings:
    """Read per call: a reload replaces the whole Config."""
    return config.plugin(NAME, BandwidthSettings)
