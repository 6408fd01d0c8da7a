"""`pbxsms bandwidth ...`: the callback URL to set on the application, and a simulator."""

from __future__ import annotations

from pathlib import Path

import click

from pbxsms.core.plugin_api import (
    config_option,
    env_option,
    listen_options,
    load_or_exit,
    load_plugin_only,
    public_urls_or_exit,
    run_simulator,
)
from pbxsms.plugins.bandwidth.settings import NAME, bandwidth_settings
from pbxsms.plugins.bandwidth.webhooks import PATH


@click.group(NAME)
def bandwidth() -> None:
    """Bandwidth helpers: the callback URL, a local simulator."""


@bandwidth.command("webhook-url")
@env_option
@config_option
def webhook_url(env_file: Path | None, config_path: Path | None) -> None:
    """Print the callback URL to set on the Bandwidth Messaging application."""
    config, _ = load_or_exit(env_file, config_path)
    (url,) = public_urls_or_exit(config, NAME, "Bandwidth", PATH)
    settings = bandwidth_settings(config)
    click.echo("Inbound and status callbacks (Bandwidth App: Applications > your Messaging "
               "application > Inbound and Status Callback URL):")
    click.echo(f"  {url}")
    click.echo("Callback credentials: user BANDWIDTH_CALLBACK_USERNAME, password "
               "BANDWIDTH_CALLBACK_PASSWORD (not printed)")
    if not settings.callback_username or not settings.callback_secret:
        click.echo("warning: BANDWIDTH_CALLBACK_USERNAME/PASSWORD are unset, so every "
                   "callback will be refused", err=True)


@bandwidth.command("simulator")
@listen_options
@click.option("--callback-url", default=None,
              help="The application's callback URL: receipts of each send go there.")
@env_option
@config_option
def simulator(host: str, port: int, callback_url: str | None, env_file: Path | None,
              config_path: Path | None) -> None:
    """Run a local Bandwidth API simulator that accepts the BANDWIDTH_* of the settings
    (or made-up ones it prints) and calls back with the callback credentials."""
    from pbxsms.plugins.bandwidth.settings import BandwidthSettings
    from pbxsms.sim.bandwidth import serve_forever

    settings = load_plugin_only(NAME, BandwidthSettings, env_file, config_path)
    given = {name: value for name, value in (
        ("account_id", settings.account_id), ("application_id", settings.application_id),
        ("client_id", settings.client_id), ("client_secret", settings.secret),
        ("callback_username", settings.callback_username),
        ("callback_password", settings.callback_secret)) if value}
    run_simulator(host, port,
                  lambda: serve_forever(host, port, callback_url=callback_url, **given))
