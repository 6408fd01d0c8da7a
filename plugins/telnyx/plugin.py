"""The Telnyx plugin's hooks."""

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
from pbxsms.plugins.telnyx import doctor
from pbxsms.plugins.telnyx.commands import telnyx
from pbxsms.plugins.telnyx.sender import TelnyxProvider
from pbxsms.plugins.telnyx.settings import NAME, TelnyxSettings, telnyx_settings
from pbxsms.plugins.telnyx.webhooks import register_webhooks


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(telnyx)


@hookimpl
def settings_model() -> type[PluginSettings]:
    return TelnyxSettings


@hookimpl
def config_warnings(config: Config) -> list[Problem]:
    settings = telnyx_settings(config)
    problems = []
    if not settings.can_send:
        problems.append(Problem("TELNYX_API_KEY",
                                "unset: replies and sends through Telnyx cannot go out"))
    if not settings.public_key:
        problems.append(Problem("TELNYX_PUBLIC_KEY",
                                "unset: every Telnyx webhook (inbound and receipts) is refused"))
    return problems


@hookimpl
def register_routes(runtime: Runtime, register: RouteRegister) -> None:
    register_webhooks(runtime, register)


@hookimpl
def register_providers(runtime: Runtime, register: ProviderRegister) -> None:
    register(TelnyxProvider(runtime))


@hookimpl
def degraded(runtime: Runtime) -> list[str]:
    # After a 401 sending is paused; receiving goes on, so the gateway stays ready.
    provider = runtime.providers.get(NAME)
    return provider.readiness() if isinstance(provider, TelnyxProvider) else []


@hookimpl
def doctor_checks(config: Config) -> list[Check]:
    return doctor.checks(config)
