"""Mobile-app settings (`RINGOTEL_*`)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from pbxsms.core.plugin_api import PluginSettings


class MobileAppSettings(PluginSettings):
    """The app API we push to, and the token its reply webhook must carry."""

    model_config = SettingsConfigDict(env_prefix="RINGOTEL_", extra="ignore",
                                      case_sensitive=False)

    api_url: str | None = Field(None, pattern=r"^https?://")
    api_token: SecretStr | None = None
    webhook_token: SecretStr | None = None
    # The app organisation of numbers whose message settings name none (one-tenant PBXs).
    org_id: str | None = None
    timeout: float = Field(15.0, gt=0)
