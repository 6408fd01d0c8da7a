"""SMTP settings (`PBXSMS_SMTP_*`)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from pbxsms.core.plugin_api import PluginSettings


class EmailSettings(PluginSettings):
    """Where and how the email copies are sent."""

    model_config = SettingsConfigDict(env_prefix="PBXSMS_SMTP_", extra="ignore",
                                      case_sensitive=False)

    host: str | None = None
    port: int = Field(25, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    from_: str = Field("pbxsms@localhost", validation_alias="PBXSMS_SMTP_FROM")
    timeout: float = Field(30.0, gt=0)
    # Open connections kept for reuse (and the most used at once).
    connections: int = Field(16, ge=1, le=100)
    # MMS pictures are attached up to this total per email; past it they are links.
    attachments_max_bytes: int = Field(10_000_000, ge=0)
