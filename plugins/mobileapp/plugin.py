"""The mobile-app plugin's hooks: inbound SMS pushed to the extension's app, and replies."""

from __future__ import annotations

import click

from pbxsms.core.plugin_api import (
    Check,
    Config,
    ConsumerRegister,
    ConsumerSpec,
    PluginSettings,
    Problem,
    RouteRegister,
    Runtime,
    hookimpl,
)
from pbxsms.plugins.mobileapp import doctor, webhook
from pbxsms.plugins.mobileapp.commands import mobileapp
from pbxsms.plugins.mobileapp.delivery import CONSUMER, MobileAppDelivery
from pbxsms.plugins.mobileapp.settings import MobileAppSettings


@hookimpl
def settings_model() -> type[PluginSettings]:
    return MobileAppSettings


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(mobileapp)


@hookimpl
def register_routes(runtime: Runtime, register: RouteRegister) -> None:
    register("POST", webhook.PATH, webhook.RingotelWebhook(runtime).handle)


@hookimpl
def register_consumers(runtime: Runtime, register: ConsumerRegister) -> None:
    # Its own durable consumer: a slow or failing app API never holds back email.
    register(ConsumerSpec(CONSUMER, "sms.inbound.>", MobileAppDelivery(runtime).handle))


@hookimpl
def config_warnings(config: Config) -> list[Problem]:
    settings = config.plugin("mobileapp", MobileAppSettings)
    problems = []
    if not settings.api_url or settings.api_token is None:
        problems.append(Problem("RINGOTEL_API_URL",
                                "RINGOTEL_API_URL or RINGOTEL_API_TOKEN unset: inbound SMS "
                                "are not pushed to the extensions' mobile app"))
    if settings.webhook_token is None:
        problems.append(Problem("RINGOTEL_WEBHOOK_TOKEN",
                                "unset: replies from the mobile app are refused"))
    return problems


@hookimpl
def doctor_checks(config: Config) -> list[Check]:
    return doctor.checks(config)
