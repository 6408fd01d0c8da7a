"""The mobile-app plugin's hooks."""

from __future__ import annotations

from pbxsms.core.hookspecs import hookimpl
from pbxsms.core.problems import Problem
from pbxsms.core.settings import Config, PluginSettings
from pbxsms.plugins.mobileapp.settings import MobileAppSettings


@hookimpl
def settings_model() -> type[PluginSettings]:
    return MobileAppSettings


@hookimpl
def config_warnings(config: Config) -> list[Problem]:
    settings: MobileAppSettings = config.plugin("mobileapp")
    problems = []
    if not settings.api_url or settings.api_token is None:
        problems.append(Problem("RINGOTEL_API_URL",
                                "RINGOTEL_API_URL or RINGOTEL_API_TOKEN unset: inbound SMS "
                                "are not pushed to the extensions' mobile app"))
    if settings.webhook_token is None:
        problems.append(Problem("RINGOTEL_WEBHOOK_TOKEN",
                                "unset: replies from the mobile app are refused"))
    return problems
