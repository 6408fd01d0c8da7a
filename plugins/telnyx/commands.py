"""`pbxsms telnyx ...`: the webhook URL to paste into Telnyx, and a local simulator."""

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
    public_url,
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
    if NAME not in config.plugins:
        click.echo("pbxsms: the telnyx plugin is not in [plugins] enabled, so this webhook "
                   "is not served", err=True)
        sys.exit(2)
    url = public_url(config.core.public_url, PATH)
    if url is None:
        click.echo("pbxsms: set PBXSMS_PUBLIC_URL to the base URL Telnyx reaches this "
                   "gateway at, e.g. https://sms.example.com", err=True)
        sys.exit(2)
    click.echo("Inbound messages and delivery receipts (Telnyx Mission Control: Messaging > "
               "your messaging profile > Inbound > Send a webhook to this URL):")
    click.echo(f"  {url}")
    if not telnyx_settings(config).public_key:
        click.echo("warning: TELNYX_PUBLIC_KEY is unset, so every webhook will be refused",
                   err=True)


@telnyx.command("simulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=0,
              help="Port to listen on (default: any free port).")
@click.option("--api-key", default="sim-telnyx-key", show_default=True,
              help="The API key it accepts.")
@click.option("--webhook-url", default=None,
              help="The messaging profile's webhook URL: receipts of each send go there.")
def simulator(host: str, port: int, api_key: str, webhook_url: str | None) -> None:
    """Run a local Telnyx API simulator; it prints the public key its webhooks are signed
    with (set TELNYX_PUBLIC_KEY to it)."""
    from pbxsms.sim.telnyx import serve_forever

    async def run() -> None:
        task = asyncio.create_task(serve_forever(host, port, api_key,
                                                 webhook_url=webhook_url))
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
