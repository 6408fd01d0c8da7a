"""`pbxsms telnyx ...`: the webhook URL to paste into Telnyx, and a local simulator."""

from __future__ import annotations

from pathlib import Path

import click

from pbxsms.core.plugin_api import (
    config_option,
    env_option,
    listen_options,
    load_or_exit,
    public_urls_or_exit,
    run_simulator,
)
from pbxsms.plugins.telnyx.settings import NAME, telnyx_settings
from pbxsms.plugins.telnyx.webhooks import PATH


@click.group(NAME)
def telnyx() -> None:
    """Telnyx helpers: the webhook URL, a local simulator."""


@telnyx.command("webhook-url")
@env_option
@config_option
def webhook_url(env_file: Path | None, config_path: Path | None) -> None:
    """Print the webhook URL to set on the Telnyx messaging profile (inbound and receipts)."""
    config, _ = load_or_exit(env_file, config_path)
    (url,) = public_urls_or_exit(config, NAME, "Telnyx", PATH)
    click.echo("Inbound messages and delivery receipts (Telnyx Mission Control: Messaging > "
               "your messaging profile > Inbound > Send a webhook to this URL):")
    click.echo(f"  {url}")
    if not telnyx_settings(config).public_key:
        click.echo("warning: TELNYX_PUBLIC_KEY is unset, so every webhook will be refused",
                   err=True)


@telnyx.command("simulator")
@listen_options
@click.option("--api-key", default="sim-telnyx-key", show_default=True,
              help="The API key it accepts.")
@click.option("--webhook-url", default=None,
              help="The messaging profile's webhook URL: receipts of each send go there.")
def simulator(host: str, port: int, api_key: str, webhook_url: str | None) -> None:
    """Run a local Telnyx API simulator; it prints the public key its webhooks are signed
    with (set TELNYX_PUBLIC_KEY to it)."""
    from pbxsms.sim.telnyx import serve_forever

    run_simulator(host, port,
                  lambda: serve_forever(host, port, api_key, webhook_url=webhook_url))
