"""ClickSend settings: the `CLICKSEND_*` names of the FS PBX guide, plus our webhook token."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from pbxsms.core.settings import PluginSettings


class ClickSendSettings(PluginSettings):
    """Outbound auth is USERNAME + API_KEY; inbound auth is SUBACCOUNT_ID and/or WEBHOOK_TOKEN."""

    model_config = SettingsConfigDict(env_prefix="CLICKSEND_", extra="ignore",
                                      case_sensitive=False)

    username: str | None = None
    api_key: SecretStr | None = None
    subaccount_id: str | None = None
    base_url: str = Field("https://rest.clicksend.com", pattern=r"^https?://")
    webhook_token: SecretStr | None = None

    @property
    def can_send(self) -> bool:
        return bool(self.username and self.api_key and self.api_key.get_secret_value())
