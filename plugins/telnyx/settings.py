"""Telnyx settings: `TELNYX_*` in Telnyx's own words (API key, public key, messaging profile).

Secrets come from the environment or `.env`; the sending tuning may also sit in the
`[telnyx]` table of the TOML file.
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

NAME = "telnyx"


class TelnyxSettings(PluginSettings):
    """Outbound auth is the API key (Bearer); inbound auth is the account's Ed25519 key."""

    model_config = SettingsConfigDict(env_prefix="TELNYX_", extra="ignore",
                                      case_sensitive=False)

    api_key: SecretStr | None = None
    # Mission Control → Keys & Credentials → Public Key (base64 of 32 bytes). Not a
    # secret, but it is what makes a webhook trusted.
    public_key: str | None = None
    messaging_profile_id: str | None = None
    base_url: str = Field("https://api.telnyx.com", pattern=r"^https?://")

    # A webhook signed longer ago than this (or this far ahead) is refused as stale
    # (Telnyx's own libraries use 300 s).
    timestamp_tolerance: Duration = Field(300.0, ge=10, le=3600)
    # Client-side limit of send calls per second (one message per call). Telnyx's
    # account default is 50 SMS/s; a 10DLC campaign or long code may allow less.
    requests_per_second: float = Field(50.0, gt=0, le=1000)
    # Telnyx has no lookup by our reference: a send whose answer was lost is either sent
    # again (at-least-once, may duplicate) or marked `unknown` (at-most-once).
    on_ambiguous: Literal["retry", "unknown"] = "unknown"
    # How long to wait for Telnyx's answer to a send.
    timeout: Duration = Field(15.0, gt=0, le=300)
    # After a 401/403, sending stays paused until the credentials change (reload) or
    # this long has passed; then one call tries again.
    auth_retry_interval: Duration = Field(300.0, ge=1)

    @property
    def can_send(self) -> bool:
        return bool(self.api_key and self.api_key.get_secret_value())

    @property
    def key(self) -> str:
        return self.api_key.get_secret_value() if self.api_key else ""


def telnyx_settings(config: Config) -> TelnyxSettings:
    """Read per call: a reload replaces the whole Config."""
    return config.plugin(NAME, TelnyxSettings)
