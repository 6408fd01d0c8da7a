"""Twilio settings: `TWILIO_ACCOUNT_SID`, `TWILIO_AUTH_TOKEN`, `TWILIO_BASE_URL`, tuning.

The secrets come from the environment or `.env`; the tuning may also sit in the `[twilio]`
table of the TOML file.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from pbxsms.core.plugin_api import Config, Duration, PluginSettings

NAME = "twilio"
ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")


class TwilioSettings(PluginSettings):
    """Sending uses ACCOUNT_SID + AUTH_TOKEN (Basic auth); the same token signs webhooks."""

    model_config = SettingsConfigDict(env_prefix="TWILIO_", extra="ignore",
                                      case_sensitive=False)

    account_sid: str | None = None
    auth_token: SecretStr | None = None
    base_url: str = Field("https://api.twilio.com", pattern=r"^https?://")

    # Twilio sends a long code's messages at 1 segment a second (toll-free 3, short code
    # 30) and queues the rest for up to 10 hours: the queue stays ours, durable and
    # visible, by sending no faster than that per number.
    segments_per_second: float = Field(1.0, gt=0, le=1000)
    # Other rates for some numbers (toll-free, short codes): E.164 number → segments/s.
    number_rates: dict[str, float] = Field(default_factory=dict)
    # A timeout or 5xx after the request went out: after looking for the message in
    # Twilio's message list, send again (at-least-once) or mark it `unknown`.
    on_ambiguous: Literal["retry", "unknown"] = "retry"
    # The lookup waits this long after the ambiguous call, so that a create Twilio was
    # still working on is listed.
    reconcile_delay: Duration = Field(2.0, ge=0, le=60)
    timeout: Duration = Field(15.0, gt=0, le=300)
    # After Twilio refused the credentials (401 / 20003), sending stays paused until the
    # settings change (reload) or this long has passed; then one call tries again.
    auth_retry_interval: Duration = Field(300.0, ge=1)

    @field_validator("account_sid")
    @classmethod
    def _sid(cls, value: str | None) -> str | None:
        if value is not None and value.strip() and not ACCOUNT_SID.fullmatch(value.strip()):
            raise ValueError("an Account SID is AC followed by 32 hexadecimal digits")
        return value.strip() if value else None

    @property
    def token(self) -> str:
        """The Auth Token, empty when unset."""
        return self.auth_token.get_secret_value() if self.auth_token else ""

    @property
    def can_send(self) -> bool:
        return bool(self.account_sid and self.token)

    def rate_of(self, number: str) -> float:
        """Segments per second for messages from `number`."""
        return self.number_rates.get(number, self.segments_per_second)


def twilio_settings(config: Config) -> TwilioSettings:
    """The plugin's settings; read per call, because a reload replaces the whole Config."""
    return config.plugin(NAME, TwilioSettings)
