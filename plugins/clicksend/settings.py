"""ClickSend settings: the `CLICKSEND_*` names of the FS PBX guide, plus our webhook token.

Secrets come from the environment or `.env`; the sending tuning may also sit in the
`[clicksend]` table of the TOML file.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from pbxsms.core.plugin_api import Duration, PluginSettings


class ClickSendSettings(PluginSettings):
    """Outbound auth is USERNAME + API_KEY; inbound auth is SUBACCOUNT_ID and/or WEBHOOK_TOKEN."""

    model_config = SettingsConfigDict(env_prefix="CLICKSEND_", extra="ignore",
                                      case_sensitive=False)

    username: str | None = None
    api_key: SecretStr | None = None
    subaccount_id: str | None = None
    base_url: str = Field("https://rest.clicksend.com", pattern=r"^https?://")
    webhook_token: SecretStr | None = None
    # Without a token the webhooks are refused (503, so ClickSend retries until it is
    # set); only this explicit opt-out opens them to anyone who finds the URL.
    webhook_insecure: bool = False

    # Sending. A partial batch goes once no message joined it for `flush_delay`.
    flush_delay: Duration = Field(0.1, le=10)
    # Messages per send call: ClickSend takes up to 1000; fewer only to compare or debug.
    max_batch: int = Field(1000, ge=1, le=1000)
    # Client-side limit of send calls per second for the account (each up to 1000 SMS).
    requests_per_second: float = Field(5.0, gt=0, le=1000)
    # A timeout or 5xx after the request went out: send again (at-least-once, may
    # duplicate) or mark the message `unknown` (at-most-once).
    on_ambiguous: Literal["retry", "unknown"] = "retry"
    # Before that, ClickSend's SMS history is asked which of the messages it stored; this
    # long after the ambiguous call, so a send it was still working on has landed.
    reconcile_delay: Duration = Field(2.0, ge=0, le=60)
    # How long to wait for ClickSend's answer to a send.
    timeout: Duration = Field(30.0, gt=0, le=300)
    # After a 401/403, sending stays paused until the credentials change (reload) or
    # this long has passed; then one call tries again.
    auth_retry_interval: Duration = Field(300.0, ge=1)

    # MMS. Hosts whose links in an inbound message are fetched as its media (exact, or
    # `.domain`); ClickSend's signed S3 links live on the first.
    media_hosts: list[str] = Field(default_factory=lambda: [
        "clicksend-api-downloads.s3.ap-southeast-2.amazonaws.com"])
    # Only for the ClickSend simulator: its origin (`http://127.0.0.1:8070`), whose media
    # links are fetched over http on loopback. Never set it in production.
    media_simulator: str | None = Field(None, pattern=r"^https?://[^/]+$")
    # The subject of outbound MMS (ClickSend requires one; at most 20 characters).
    mms_subject: str = Field("MMS", min_length=1, max_length=20)

    @property
    def can_send(self) -> bool:
        return bool(self.username and self.api_key and self.api_key.get_secret_value())
