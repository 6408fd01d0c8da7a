"""The console plugin's hooks: its settings, routes, read-model consumer and command."""

from __future__ import annotations

import logging

import click
from nats.js.api import KeyValueConfig, StorageType

from pbxsms.core.plugin_api import (
    Bucket,
    Config,
    ConsumerRegister,
    ConsumerSpec,
    PluginSettings,
    Problem,
    RouteRegister,
    Runtime,
    hookimpl,
)
from pbxsms.plugins.console import live, numbers, pages, problems
from pbxsms.plugins.console.commands import console as console_command
from pbxsms.plugins.console.index import CONSUMER, MESSAGES_BUCKET, THREADS_BUCKET, Index
from pbxsms.plugins.console.render import static_file
from pbxsms.plugins.console.settings import ConsoleSettings
from pbxsms.plugins.console.users import USERS_BUCKET, Users
from pbxsms.plugins.console.web import Console

log = logging.getLogger("pbxsms.console")

# One console per runtime (tests run several gateways in one process).
_consoles: dict[int, Console] = {}


def _console(runtime: Runtime) -> Console:
    return _consoles.setdefault(id(runtime), Console(runtime))


@hookimpl
def settings_model() -> type[PluginSettings]:
    return ConsoleSettings


@hookimpl
def config_warnings(config: Config) -> list[Problem]:
    settings = config.plugin("console", ConsoleSettings)
    if settings.key is None:
        return [Problem("PBXSMS_CONSOLE_SECRET",
                        "unset or shorter than 16 characters: the console refuses every "
                        "sign-in; set a long random value (the same on every instance)")]
    return []


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(console_command)


@hookimpl
def register_routes(runtime: Runtime, register: RouteRegister) -> None:
    console = _console(runtime)
    register("GET", "/console/static/{name}", static_file)
    pages.register(console, register)
    live.register(console, register)
    numbers.register(console, register)
    problems.register(console, register)


@hookimpl
async def startup(runtime: Runtime) -> None:
    console = _console(runtime)
    ttl = runtime.config.file.bus.max_age
    messages, direct = await _direct_bucket(runtime, MESSAGES_BUCKET, ttl)
    index = Index(runtime, await runtime.bucket(THREADS_BUCKET, ttl=ttl), messages, direct)
    console.started(index, Users(await runtime.bucket(USERS_BUCKET)))


async def _direct_bucket(runtime: Runtime, name: str, ttl: float) -> tuple[Bucket, bool]:
    """A bucket whose stream answers direct gets, so that a thread page reads its 50
    messages in one request; and whether it does (a bucket made otherwise is used as is)."""
    bus = runtime.config.file.bus
    try:
        kv = await runtime.js.create_key_value(KeyValueConfig(
            bucket=name, ttl=ttl, history=1, replicas=bus.replicas,
            storage=StorageType.FILE, direct=True))
    except Exception as error:  # exists already, perhaps with other settings
        log.debug("bucket %s exists (%s); using it", name, error)
        kv = await runtime.js.key_value(name)
    info = await runtime.js.stream_info(f"KV_{name}")
    bucket = Bucket(kv, runtime.publisher, name, timeout=bus.publish_timeout)
    return bucket, bool(info.config.allow_direct)


@hookimpl
def register_consumers(runtime: Runtime, register: ConsumerRegister) -> None:
    register(ConsumerSpec(CONSUMER, "sms.>", _console(runtime).index.handle, from_start=True))


@hookimpl
def shutdown(runtime: Runtime) -> None:
    _consoles.pop(id(runtime), None)


@hookimpl
def readiness(runtime: Runtime) -> list[str]:
    console = _consoles.get(id(runtime))
    return [] if console is None or console.ready else ["console read model not open"]
