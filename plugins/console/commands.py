"""`pbxsms console user add NAME [--domain D]`: a console login, written to the bus the
gateway uses (NATS_URL, else the embedded server of a running `pbxsms serve`)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from pbxsms.core.plugin_api import env_option, load_or_exit


@click.group("console")
def console() -> None:
    """The operator console in a browser (/console/)."""


@console.group("user")
def user() -> None:
    """Console users."""


@user.command("add")
@click.argument("name")
@click.option("--domain", default=None,
              help="Limit the user to this tenant's numbers and conversations.")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of stdin instead of a prompt.")
@env_option
def add(name: str, domain: str | None, password_stdin: bool, env_file: Path | None) -> None:
    """Create or replace the console user NAME (prompts for the password)."""
    from pbxsms.plugins.console.users import UserError, new_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        record = new_user(name, password, domain)
    except UserError as error:
        click.echo(f"pbxsms console: {error}", err=True)
        sys.exit(2)
    core = load_or_exit(env_file, None)[0].core
    servers = core.nats_servers() or [f"nats://127.0.0.1:{core.embedded_nats_port}"]
    try:
        asyncio.run(_store(servers, record.model_dump_json().encode(), record.name))
    except Exception as error:
        click.echo(f"pbxsms console: cannot store the user on the bus at "
                   f"{', '.join(servers)}: {error} (is `pbxsms serve` running, or NATS_URL "
                   "set?)", err=True)
        sys.exit(1)
    scope = f"tenant {record.domain}" if record.domain else "every tenant"
    click.echo(f"console user {record.name} saved ({scope})")


async def _store(servers: list[str], value: bytes, name: str) -> None:
    import nats
    from nats.js.api import KeyValueConfig, StorageType

    from pbxsms.plugins.console.users import USERS_BUCKET

    nc = await nats.connect(servers=servers, connect_timeout=3, max_reconnect_attempts=0,
                            allow_reconnect=False)
    try:
        js = nc.jetstream(timeout=5.0)
        try:  # the gateway makes it at start; this works before that too
            kv = await js.key_value(USERS_BUCKET)
        except nats.js.errors.BucketNotFoundError:
            kv = await js.create_key_value(KeyValueConfig(
                bucket=USERS_BUCKET, history=1, storage=StorageType.FILE))
        await kv.put(name, value)
    finally:
        await nc.close()
