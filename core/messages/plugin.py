"""Messages as a core plugin: the operator's message routes and `pbxsms messages`."""

from __future__ import annotations

import click

from pbxsms.core.hookspecs import hookimpl
from pbxsms.core.messages import api
from pbxsms.core.messages.commands import messages
from pbxsms.core.registry import RouteRegister
from pbxsms.core.serve.runtime import Runtime


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(messages)


@hookimpl
def register_routes(runtime: Runtime, register: RouteRegister) -> None:
    api.register_routes(runtime, register)
