"""Media settings (`PBXSMS_MEDIA_*`, or the `[media]` table of the TOML file)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from pbxsms.core.config.durations import Duration
from pbxsms.core.config.settings import PluginSettings


class MediaSettings(PluginSettings):
    """Caps and retention of MMS media, and the key that signs their links."""

    model_config = SettingsConfigDict(env_prefix="PBXSMS_MEDIA_", extra="ignore",
                                      case_sensitive=False)

    # Bytes per item, counted while it streams in (default 5 MB).
    max_bytes: int = Field(5_000_000, ge=1000, le=100_000_000)
    # Items per message; the rest are refused with this reason.
    max_items: int = Field(10, ge=1, le=50)
    # How long the Object Store keeps the bytes (and links can work).
    retention: Duration = Field(14 * 86400.0, gt=0)
    # HMAC key of the links served at PBXSMS_PUBLIC_URL/media/...; unset: no links.
    url_secret: SecretStr | None = None
    # How long a link given to the mobile app works.
    link_ttl: Duration = Field(7 * 86400.0, gt=0)
    # One fetch, start to end; and attempts of an item that fails for now (5xx, timeout)
    # before it is recorded as unavailable and the message goes on without it.
    fetch_timeout: Duration = Field(30.0, gt=0, le=300)
    fetch_attempts: int = Field(5, ge=1, le=50)
    # Hosts that media URLs given to the send API may come from (exact, or `.domain`).
    outbound_hosts: list[str] = Field(default_factory=list)
