"""`pbxsms mobileapp ...`: the operator's mobile-app helpers."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import click

from pbxsms.core.plugin_api import env_option, load_plugin_only
from pbxsms.plugins.mobileapp.settings import MobileAppSettings


@click.group("mobileapp")
def mobileapp() -> None:
    """Mobile-app (Ringotel-style) helpers: a local simulator of the app API."""


@mobileapp.command("simulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8090, show_default=True,
              help="Port to listen on (0 picks a free one).")
@click.option("--token", default=None, envvar="RINGOTEL_API_TOKEN",
              help="Bearer token the gateway must send (default: RINGOTEL_API_TOKEN from "
              "the environment or .env).")
@env_option
def simulator(host: str, port: int, token: str | None, env_file: Path | None) -> None:
    """Run a local stand-in for the app API, for demos and tests.

    Point RINGOTEL_API_URL at the printed URL. Pushes are listed at /_sim/pushes;
    POST /_sim/reply makes the simulated app reply through the gateway's webhook.
    """
    from pbxsms.sim.mobileapp import serve_forever

    if not token:
        settings = load_plugin_only("mobileapp", MobileAppSettings, env_file)
        if settings.api_token is not None:
            token = settings.api_token.get_secret_value()
    if not token:
        click.echo("pbxsms: give --token or set RINGOTEL_API_TOKEN (environment or .env)",
                   err=True)
        sys.exit(2)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(host, port, token))
