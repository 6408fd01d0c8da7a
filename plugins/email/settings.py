"""SMTP settings (`PBXSMS_SMTP_*`)."""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
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
    # Implicit TLS from the first byte (SMTPS, port 465), instead of STARTTLS.
    tls: bool = False
    # CA certificates to trust for the server's, instead of the system's.
    ca_file: Path | None = None
    from_: str = Field("pbxsms@localhost", validation_alias="PBXSMS_SMTP_FROM")
    timeout: float = Field(30.0, gt=0)
    # Open connections kept for reuse (and the most used at once).
    connections: int = Field(16, ge=1, le=100)
    # MMS pictures are attached up to this total per email; past it they are links.
    attachments_max_bytes: int = Field(10_000_000, ge=0)

    @model_validator(mode="after")
    def _one_tls(self) -> EmailSettings:
        if self.tls and self.starttls:
            raise ValueError("PBXSMS_SMTP_TLS (port 465) and PBXSMS_SMTP_STARTTLS (port 587) "
                             "exclude each other: set one")
        return self

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context for STARTTLS or implicit TLS; None: aiosmtplib's default."""
        if self.ca_file is None:
            return None
        return ssl.create_default_context(cafile=str(self.ca_file))
