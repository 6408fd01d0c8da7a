"""The Twilio plugin's hooks."""

from __future__ import annotations

import click

from pbxsms.core.plugin_api import (
    Check,
    Config,
    PluginSettings,
    Problem,
    ProviderRegister,
    RouteRegister,
    Runtime,
    hookimpl,
)
from pbxsms.plugins.twilio import doctor
from pbxsms.plugins.twilio.commands import twilio
from pbxsms.plugins.twilio.sender import TwilioProvider
from pbxsms.plugins.twilio.settings import NAME, TwilioSettings, twilio_settings
from pbxsms.plugins.twilio.webhooks import register_webhooks


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(twilio)


@hookimpl
def settings_model() -> type[PluginSettings]:
    return TwilioSettings


@hookimpl
def config_warnings(config: Config) -> list[Problem]:
    settings = twilio_settings(config)
    problems = []
    if not settings.account_sid:
        problems.append(Problem("TWILIO_ACCOUNT_SID",
                                "unset: replies and sends through Twilio cannot go out"))
    if not settings.token:
        problems.append(Problem("TWILIO_AUTH_TOKEN",
                                "unset: nothing can be sent through Twilio, and every Twilio "
                                "webhook is refused (its signature cannot be checked)"))
    if not (config.core.public_url or "").strip():
        problems.append(Problem("PBXSMS_PUBLIC_URL",
                                "unset: Twilio's webhooks are signed over the public URL, so "
                                "every one is refused, and sends ask for no status callback"))
    return problems


@hookimpl
def register_routes(runtime: Runtime, register: RouteRegister) -> None:
    register_webhooks(runtime, register)


@hookimpl
def register_providers(runtime: Runtime, register: ProviderRegister) -> None:
    register(TwilioProvider(runtime))


@hookimpl
def degraded(runtime: Runtime) -> list[str]:
    # After Twilio refuses the account sending is paused, not retried in a storm; say so
    # until fixed. Receiving goes on, so the gateway stays ready.
    provider = runtime.providers.get(NAME)
    return provider.readiness() if isinstance(provider, TwilioProvider) else []


@hookimpl
def doctor_checks(config: Config) -> list[Check]:
    return doctor.checks(config)
