"""`pbxsms bandwidth ...`: the callback URL to set on the application, and a simulator."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import click

from pbxsms.core.plugin_api import (
    config_option,
    env_option,
    load_or_exit,
    load_plugin_only,
    public_url,
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
    if NAME not in config.plugins:
        click.echo("pbxsms: the bandwidth plugin is not in [plugins] enabled, so this "
                   "callback is not served", err=True)
        sys.exit(2)
    url = public_url(config.core.public_url, PATH)
    if url is None:
        click.echo("pbxsms: set PBXSMS_PUBLIC_URL to the base URL Bandwidth reaches this "
                   "gateway at, e.g. https://sms.example.com", err=True)
        sys.exit(2)
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
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=0,
              help="Port to listen on (default: any free port).")
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

    async def run() -> None:
        task = asyncio.create_task(serve_forever(host, port, callback_url=callback_url,
                                                 **given))
        loop = asyncio.get_running_loop()
        for stop in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(stop, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(run())
    except OSError as error:
        click.echo(f"pbxsms: cannot listen on {host}:{port}: {error}", err=True)
        sys.exit(1)
