"""The Bandwidth plugin's hooks."""

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
from pbxsms.plugins.bandwidth import doctor
from pbxsms.plugins.bandwidth.commands import bandwidth
from pbxsms.plugins.bandwidth.sender import BandwidthProvider
from pbxsms.plugins.bandwidth.settings import NAME, BandwidthSettings, bandwidth_settings
from pbxsms.plugins.bandwidth.webhooks import register_webhooks


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(bandwidth)


@hookimpl
def settings_model() -> type[PluginSettings]:
    return BandwidthSettings


@hookimpl
def config_warnings(config: Config) -> list[Problem]:
    settings = bandwidth_settings(config)
    problems = []
    for name, value in (("BANDWIDTH_ACCOUNT_ID", settings.account_id),
                        ("BANDWIDTH_APPLICATION_ID", settings.application_id),
                        ("BANDWIDTH_CLIENT_ID", settings.client_id),
                        ("BANDWIDTH_CLIENT_SECRET", settings.secret)):
        if not value:
            problems.append(Problem(name, "unset: replies and sends through Bandwidth "
                                          "cannot go out"))
    for name, value in (("BANDWIDTH_CALLBACK_USERNAME", settings.callback_username),
                        ("BANDWIDTH_CALLBACK_PASSWORD", settings.callback_secret)):
        if not value:
            problems.append(Problem(name, "unset: every Bandwidth callback (inbound and "
                                          "receipts) is refused"))
    return problems


@hookimpl
def register_routes(runtime: Runtime, register: RouteRegister) -> None:
    register_webhooks(runtime, register)


@hookimpl
def register_providers(runtime: Runtime, register: ProviderRegister) -> None:
    register(BandwidthProvider(runtime))


@hookimpl
def degraded(runtime: Runtime) -> list[str]:
    # After a 401/403 sending is paused; receiving goes on, so the gateway stays ready.
    provider = runtime.providers.get(NAME)
    return provider.readiness() if isinstance(provider, BandwidthProvider) else []


@hookimpl
def doctor_checks(config: Config) -> list[Check]:
    return doctor.checks(config)
