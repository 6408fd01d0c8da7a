"""`pbxsms twilio ...`: the operator's Twilio helpers."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import click

from pbxsms.core.plugin_api import (
    ConfigError,
    config_option,
    env_option,
    load_or_exit,
    load_plugin_only,
    public_url,
)
from pbxsms.plugins.twilio.settings import NAME, TwilioSettings
from pbxsms.plugins.twilio.webhooks import SMS_PATH, STATUS_PATH


@click.group(NAME)
def twilio() -> None:
    """Twilio helpers: webhook URLs, a local simulator."""


@twilio.command("webhook-url")
@env_option
@config_option
def webhook_url(env_file: Path | None, config_path: Path | None) -> None:
    """Print the URL to paste into the Twilio Console, and the status callback URL."""
    config, _ = load_or_exit(env_file, config_path)
    if NAME not in config.plugins:
        click.echo("pbxsms: the twilio plugin is not in [plugins] enabled, so these webhooks "
                   "are not served", err=True)
        sys.exit(2)
    sms_url = public_url(config.core.public_url, SMS_PATH)
    if sms_url is None:
        click.echo("pbxsms: set PBXSMS_PUBLIC_URL to the base URL Twilio reaches this gateway "
                   "at, e.g. https://sms.example.com", err=True)
        sys.exit(2)
    click.echo("Inbound messages (Twilio Console: Phone Numbers > your number > Messaging > "
               "A MESSAGE COMES IN, Webhook, HTTP POST):")
    click.echo(f"  {sms_url}")
    click.echo("Status callbacks (set by pbxsms on every message it sends, with ?id=<message "
               "id>; nothing to paste, shown for firewalls and proxies):")
    click.echo(f"  {public_url(config.core.public_url, STATUS_PATH)}")
    if not sms_url.startswith("https://"):
        click.echo("warning: PBXSMS_PUBLIC_URL is not https://, so messages cross the "
                   "internet in clear", err=True)


@twilio.command("simulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=0,
              help="Port to listen on (default: any free port).")
@click.option("--account-sid", default=None,
              help="Account SID it accepts (default: TWILIO_ACCOUNT_SID, else a made-up one).")
@click.option("--auth-token", default=None,
              help="Auth token it accepts and signs webhooks with (default: TWILIO_AUTH_TOKEN). "
                   "Never printed.")
@env_option
@config_option
def simulator(host: str, port: int, account_sid: str | None, auth_token: str | None,
              env_file: Path | None, config_path: Path | None) -> None:
    """Run a local Twilio API simulator for demos, tests and benchmarks."""
    from pbxsms.sim.twilio import DEFAULT_ACCOUNT_SID, serve_forever

    try:
        settings = load_plugin_only(NAME, TwilioSettings, env_file, config_path)
    except ConfigError as error:
        click.echo(f"pbxsms: configuration problems: {error}", err=True)
        sys.exit(2)
    account_sid = account_sid or settings.account_sid or DEFAULT_ACCOUNT_SID
    auth_token = auth_token or settings.token
    if not auth_token:
        click.echo("pbxsms: give --auth-token or set TWILIO_AUTH_TOKEN: the token the "
                   "simulator accepts", err=True)
        sys.exit(2)

    async def run() -> None:
        task = asyncio.create_task(serve_forever(host, port, account_sid, auth_token))
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
