"""`pbxsms twilio ...`: the operator's Twilio helpers."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pbxsms.core.plugin_api import (
    ConfigError,
    config_option,
    env_option,
    listen_options,
    load_or_exit,
    load_plugin_only,
    public_urls_or_exit,
    run_simulator,
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
    sms_url, status_url = public_urls_or_exit(config, NAME, "Twilio", SMS_PATH, STATUS_PATH)
    click.echo("Inbound messages (Twilio Console: Phone Numbers > your number > Messaging > "
               "A MESSAGE COMES IN, Webhook, HTTP POST):")
    click.echo(f"  {sms_url}")
    click.echo("Status callbacks (set by pbxsms on every message it sends, with ?id=<message "
               "id>; nothing to paste, shown for firewalls and proxies):")
    click.echo(f"  {status_url}")
    if not sms_url.startswith("https://"):
        click.echo("warning: PBXSMS_PUBLIC_URL is not https://, so messages cross the "
                   "internet in clear", err=True)


@twilio.command("simulator")
@listen_options
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

    run_simulator(host, port, lambda: serve_forever(host, port, account_sid, auth_token))
