"""The email plugin's hooks."""

from __future__ import annotations

from pbxsms.core.hookspecs import hookimpl
from pbxsms.core.problems import Problem
from pbxsms.core.settings import Config, PluginSettings
from pbxsms.plugins.email.settings import EmailSettings


@hookimpl
def settings_model() -> type[PluginSettings]:
    return EmailSettings


@hookimpl
def config_warnings(config: Config) -> list[Problem]:
    settings: EmailSettings = config.plugin("email")
    if not settings.host:
        return [Problem("PBXSMS_SMTP_HOST", "unset: no email copies of inbound SMS are sent")]
    return []
