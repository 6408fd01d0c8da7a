"""`pbxsms freeswitch ...`: the operator's FreeSWITCH helpers."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import click

from pbxsms.core.plugin_api import env_option, load_plugin_only
from pbxsms.plugins.freeswitch.settings import FreeSwitchSettings


@click.group("freeswitch")
def freeswitch() -> None:
    """FreeSWITCH helpers: a local stand-in for its event socket."""


@freeswitch.command("simulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8021, show_default=True,
              help="Port to listen on (0 picks a free one).")
@click.option("--password", default=None,
              help="Password the gateway must log in with (default: FREESWITCH_ESL_PASSWORD "
              "from the environment or .env).")
@click.option("--register", "users", multiple=True, metavar="EXTENSION@DOMAIN",
              help="A registered extension; repeat for several.")
@env_option
def simulator(host: str, port: int, password: str | None, users: tuple[str, ...],
              env_file: Path | None) -> None:
    """Run a local stand-in for FreeSWITCH's event socket, for demos.

    Point FREESWITCH_ESL_HOST/PORT at it. It prints each text a registered extension gets;
    type `<extension@domain> <number> <text>` to text from a phone.
    """
    from pbxsms.sim.freeswitch import serve_forever

    if not password:
        settings = load_plugin_only("freeswitch", FreeSwitchSettings, env_file)
        if settings.esl_password is not None:
            password = settings.esl_password.get_secret_value()
    if not password:
        click.echo("pbxsms: give --password or set FREESWITCH_ESL_PASSWORD (environment or "
                   ".env)", err=True)
        sys.exit(2)
    bad = [user for user in users if "@" not in user]
    if bad:
        click.echo(f"pbxsms: --register takes EXTENSION@DOMAIN, not {bad[0]!r}", err=True)
        sys.exit(2)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(host, port, password, users))
