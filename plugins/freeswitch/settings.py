"""FreeSWITCH settings (`FREESWITCH_*`, or the `[freeswitch]` table for what is not secret)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from pbxsms.core.plugin_api import Duration, PluginSettings


class FreeSwitchSettings(PluginSettings):
    """Where the event socket is, and how long a text waits for the extension's phones."""

    model_config = SettingsConfigDict(env_prefix="FREESWITCH_", extra="ignore",
                                      case_sensitive=False, env_ignore_empty=True)

    esl_host: str = "127.0.0.1"
    esl_port: int = Field(8021, ge=1, le=65535)
    # event_socket.conf.xml's `password`; unset: the channel is off.
    esl_password: SecretStr | None = None
    # The sofia profile the phones register on (FusionPBX and FS PBX: internal).
    sip_profile: str = Field("internal", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # The SIP domain of numbers whose message settings name none (one-tenant PBXs).
    domain: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,253}$")
    # How long after it arrived a text keeps being retried while no phone takes it.
    retry_for: Duration = Field(3600.0, gt=0)
    # FreeSWITCH waits up to ~20 s for a phone's answer before it reports.
    report_timeout: Duration = Field(30.0, gt=0)
    # Connecting, logging in and each command's answer.
    timeout: Duration = Field(5.0, gt=0)
