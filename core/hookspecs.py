"""The hooks a pbxsms plugin may implement. Built-in plugins use exactly these."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from pbxsms.core.config.problems import Problem
    from pbxsms.core.config.settings import Config, PluginSettings
    from pbxsms.core.health.doctor import Check
    from pbxsms.core.media.fetch import FetchPolicy
    from pbxsms.core.registry import ConsumerRegister, ProviderRegister, RouteRegister
    from pbxsms.core.serve.runtime import Runtime

hookspec = pluggy.HookspecMarker("pbxsms")
hookimpl = pluggy.HookimplMarker("pbxsms")


@hookspec
def settings_model() -> type[PluginSettings] | None:
    """Return this plugin's settings model (environment, `.env` and its TOML table)."""


@hookspec
def config_warnings(config: Config) -> list[Problem]:
    """Return each missing setting, naming what will not work without it."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to the `pbxsms` command line with `cli.add_command`."""


@hookspec
def register_routes(runtime: Runtime, register: RouteRegister) -> None:
    """Add HTTP routes through `register(method, path, handler)`."""


@hookspec
def register_consumers(runtime: Runtime, register: ConsumerRegister) -> None:
    """Declare durable JetStream consumers through `register(spec)`."""


@hookspec
def register_providers(runtime: Runtime, register: ProviderRegister) -> None:
    """Declare SMS providers (outbound senders) through `register(provider)`."""


@hookspec(firstresult=True)
def media_policy(config: Config, provider: str) -> FetchPolicy | None:
    """Return where `provider`'s inbound media links may be fetched from (its plugin only)."""


@hookspec
def startup(runtime: Runtime) -> Awaitable[None] | None:
    """Run once the bus is ready, before consumers start and HTTP is served."""


@hookspec
def shutdown(runtime: Runtime) -> Awaitable[None] | None:
    """Release what `startup` acquired; consumers have stopped, the bus is still open."""


@hookspec
def degraded(runtime: Runtime) -> list[str]:
    """Return what this plugin cannot do now while the gateway still serves the rest."""


@hookspec
def readiness(runtime: Runtime) -> list[str]:
    """Return the reasons this plugin cannot serve now; empty when it can."""


@hookspec
def doctor_checks(config: Config) -> list[Check]:
    """Return checks of this plugin's settings against the real services, for `pbxsms doctor`.

    Each `Check(name, run)` awaits to a `Finding` (ok, warn or fail with a fix); it must
    not send a message.
    """


@hookspec
def settings_reloaded(runtime: Runtime, old: Config, new: Config) -> Awaitable[None] | None:
    """React to settings re-read on SIGHUP or `pbxsms reload`; `runtime.config` is `new`."""
