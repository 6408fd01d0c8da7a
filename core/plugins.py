"""The plugin manager: built-in plugins and `pbxsms.plugins` entry points, typed calls.

Core code calls hooks only through `Plugins`' typed methods, never `pm.hook` directly.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, cast

import pluggy

from pbxsms.core import hookspecs
from pbxsms.core.config.problems import ConfigError, Problem

if TYPE_CHECKING:
    import click

    from pbxsms.core.config.settings import Config, PluginSettings
    from pbxsms.core.health.doctor import Check
    from pbxsms.core.media.fetch import FetchPolicy
    from pbxsms.core.registry import (
        ConsumerSpec,
        Provider,
        RouteRegister,
    )
    from pbxsms.core.serve.runtime import Runtime

ENTRY_POINT_GROUP = "pbxsms.plugins"

# Always on: the core's own routes and consumers, shipped as ordinary plugins.
CORE_PLUGINS = {"core": "pbxsms.core.health.plugin",
                "media": "pbxsms.core.media.plugin",
                "messages": "pbxsms.core.messages.plugin",
                "numbers": "pbxsms.core.numbers.plugin",
                "optout": "pbxsms.core.optout.plugin",
                "outbound": "pbxsms.core.outbound.plugin"}

# Built-in optional plugins, enabled by name in `[plugins] enabled`.
BUILTIN_PLUGINS = {
    "clicksend": "pbxsms.plugins.clicksend.plugin",
    "console": "pbxsms.plugins.console.plugin",
    "email": "pbxsms.plugins.email.plugin",
    "freeswitch": "pbxsms.plugins.freeswitch.plugin",
    "mobileapp": "pbxsms.plugins.mobileapp.plugin",
    "twilio": "pbxsms.plugins.twilio.plugin",
    "telnyx": "pbxsms.plugins.telnyx.plugin",
    "bandwidth": "pbxsms.plugins.bandwidth.plugin",
}


def available_plugins() -> dict[str, str]:
    """Every plugin that could be enabled: name → where it comes from."""
    found = {name: f"built-in ({module})" for name, module in BUILTIN_PLUGINS.items()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, f"entry point ({ep.value})")
    return found


class Plugins:
    """The active plugins and typed wrappers around their hooks."""

    def __init__(self, enabled: Iterable[str] | None = None) -> None:
        """Register the core plugin and `enabled` (all available ones when None)."""
        self.pm = pluggy.PluginManager("pbxsms")
        self.pm.add_hookspecs(hookspecs)
        available = available_plugins()
        names = list(available) if enabled is None else list(dict.fromkeys(enabled))
        unknown = [name for name in names if name not in available]
        if unknown:
            raise ConfigError([Problem(
                "toml.plugins.enabled",
                f"unknown plugin {', '.join(map(repr, unknown))}; "
                f"available: {', '.join(sorted(available))}")])
        for name, module in CORE_PLUGINS.items():
            self.pm.register(importlib.import_module(module), name=name)
        for name in names:
            if name in BUILTIN_PLUGINS:
                self.pm.register(importlib.import_module(BUILTIN_PLUGINS[name]), name=name)
            else:
                self.pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)
        self.pm.check_pending()
        self.enabled = names

    def register(self, plugin: object, name: str) -> None:
        """Register an extra plugin object (tests and embedding applications)."""
        self.pm.register(plugin, name=name)
        self.pm.check_pending()
        self.enabled.append(name)

    def _by_plugin(self, hook: str, **kwargs: Any) -> dict[str, Any]:
        """Call `hook` on each plugin separately, to know who answered what."""
        results = {}
        for name in [*CORE_PLUGINS, *self.enabled]:
            plugin = self.pm.get_plugin(name)
            if plugin is None:
                continue
            impl = getattr(plugin, hook, None)
            if impl is not None and hasattr(impl, "pbxsms_impl"):
                results[name] = impl(**kwargs)
        return results

    def settings_models(self) -> dict[str, type[PluginSettings]]:
        """Each enabled plugin's settings model, by plugin name."""
        return {name: model for name, model in self._by_plugin("settings_model").items()
                if model is not None}

    def config_warnings(self, config: Config) -> list[Problem]:
        """Core problems first, then each plugin's in `enabled` order."""
        return [p for problems in self._by_plugin("config_warnings", config=config).values()
                for p in problems]

    def register_commands(self, cli: click.Group) -> None:
        self.pm.hook.register_commands(cli=cli)

    def register_routes(self, runtime: Runtime, register: RouteRegister) -> None:
        self.pm.hook.register_routes(runtime=runtime, register=register)

    def consumers(self, runtime: Runtime) -> list[ConsumerSpec]:
        specs: list[ConsumerSpec] = []
        self.pm.hook.register_consumers(runtime=runtime, register=specs.append)
        return specs

    def providers(self, runtime: Runtime) -> dict[str, Provider]:
        found: list[Provider] = []
        self.pm.hook.register_providers(runtime=runtime, register=found.append)
        return {provider.name: provider for provider in found}

    def media_policy(self, config: Config, provider: str) -> FetchPolicy | None:
        """The fetch policy of `provider`'s inbound media; None: it allows no media host."""
        policy: FetchPolicy | None = self.pm.hook.media_policy(config=config,
                                                               provider=provider)
        return policy

    async def startup(self, runtime: Runtime) -> None:
        for result in self.pm.hook.startup(runtime=runtime):
            await await_me_maybe(result)

    async def shutdown(self, runtime: Runtime) -> None:
        for result in self.pm.hook.shutdown(runtime=runtime):
            await await_me_maybe(result)

    def degraded(self, runtime: Runtime) -> list[str]:
        return [reason for reasons in self.pm.hook.degraded(runtime=runtime)
                for reason in reasons]

    def readiness(self, runtime: Runtime) -> list[str]:
        return [reason for reasons in self.pm.hook.readiness(runtime=runtime)
                for reason in reasons]

    def doctor_checks(self, config: Config) -> list[Check]:
        """The core's checks first, then each plugin's in `enabled` order."""
        return [check for checks in self._by_plugin("doctor_checks", config=config).values()
                for check in checks]

    async def settings_reloaded(self, runtime: Runtime, old: Config, new: Config) -> None:
        for result in self.pm.hook.settings_reloaded(runtime=runtime, old=old, new=new):
            await await_me_maybe(result)


async def await_me_maybe(value: object) -> None:
    """Await a hook's result when it is awaitable (pluggy itself is synchronous)."""
    if inspect.isawaitable(value):
        await cast(Any, value)


def hook_names() -> list[str]:
    """Every hook of the spec, for the docs and tests that guard them."""
    return sorted(name for name, value in vars(hookspecs).items()
                  if callable(value) and hasattr(value, "pbxsms_spec"))
