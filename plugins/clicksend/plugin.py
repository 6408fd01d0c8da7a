"""The ClickSend plugin's hooks."""

from __future__ import annotations

import click

from pbxsms.core.plugin_api import (
    Check,
    Config,
    FetchPolicy,
    PluginSettings,
    Problem,
    ProviderRegister,
    RouteRegister,
    Runtime,
    hookimpl,
)
from pbxsms.plugins.clicksend import doctor, mms
from pbxsms.plugins.clicksend.commands import clicksend
from pbxsms.plugins.clicksend.sender import ClickSendProvider
from pbxsms.plugins.clicksend.settings import ClickSendSettings
from pbxsms.plugins.clicksend.webhooks import register_webhooks, webhook_exposure, webhook_token


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(clicksend)


@hookimpl
def settings_model() -> type[PluginSettings]:
    return ClickSendSettings


@hookimpl
def config_warnings(config: Config) -> list[Problem]:
    settings = config.plugin("clicksend", ClickSendSettings)
    problems = []
    if not settings.username:
        problems.append(Problem("CLICKSEND_USERNAME",
                                "unset: replies and sends through ClickSend cannot go out"))
    if settings.api_key is None or not settings.api_key.get_secret_value():
        problems.append(Problem("CLICKSEND_API_KEY",
                                "unset: replies and sends through ClickSend cannot go out"))
    if webhook_token(settings) is None:
        if settings.webhook_insecure:
            problems.append(Problem(
                "CLICKSEND_WEBHOOK_TOKEN",
                "unset and CLICKSEND_WEBHOOK_INSECURE=true: inbound webhooks are "
                "unauthenticated, anyone who finds the URL can inject messages"))
        else:
            problems.append(Problem(
                "CLICKSEND_WEBHOOK_TOKEN",
                "unset: every ClickSend webhook is refused (503) until it is set to a long "
                "random secret (a subaccount id is no secret)"))
    return problems


@hookimpl
def register_routes(runtime: Runtime, register: RouteRegister) -> None:
    register_webhooks(runtime, register)


@hookimpl
def media_policy(config: Config, provider: str) -> FetchPolicy | None:
    if provider != "clicksend":
        return None
    return mms.media_policy(config.plugin("clicksend", ClickSendSettings))


@hookimpl
def register_providers(runtime: Runtime, register: ProviderRegister) -> None:
    register(ClickSendProvider(runtime))


@hookimpl
def degraded(runtime: Runtime) -> list[str]:
    # After a 401 sending is paused instead of retried in a storm; say so until fixed.
    # Receiving goes on, so the gateway stays ready.
    provider = runtime.providers.get("clicksend")
    reasons = provider.readiness() if isinstance(provider, ClickSendProvider) else []
    exposure = webhook_exposure(runtime.config.plugin("clicksend", ClickSendSettings))
    return reasons + ([exposure] if exposure else [])


@hookimpl
def doctor_checks(config: Config) -> list[Check]:
    return doctor.checks(config)
