"""Message settings as a core plugin: the API and CLI, and `[[numbers]]` applied at start
and on reload."""

from __future__ import annotations

import logging

import click

from pbxsms.core.config.settings import Config
from pbxsms.core.hookspecs import hookimpl
from pbxsms.core.model.numbers import NumberError
from pbxsms.core.numbers import api
from pbxsms.core.numbers.commands import numbers
from pbxsms.core.registry import RouteRegister
from pbxsms.core.serve.runtime import Runtime
from pbxsms.core.stores.numbers import STORE_ERRORS

log = logging.getLogger("pbxsms.numbers")


async def apply_file(runtime: Runtime, config: Config) -> int:
    """Upsert the file's `[[numbers]]` (all or none); how many records changed."""
    records = runtime.numbers.validate_many(config.file.numbers, where="toml.numbers")
    written = await runtime.numbers.upsert(records)
    log.info("message settings: %d numbers in %s, %d changed", len(records),
             config.core.config, written)
    return written


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(numbers)


@hookimpl
def register_routes(runtime: Runtime, register: RouteRegister) -> None:
    api.register_routes(runtime, register)


@hookimpl
async def startup(runtime: Runtime) -> None:
    try:
        await apply_file(runtime, runtime.config)
    except NumberError as error:  # e.g. a provider plugin that registered no provider
        raise RuntimeError(f"{error.field}: {error.message}") from None


@hookimpl
async def settings_reloaded(runtime: Runtime, old: Config, new: Config) -> None:
    try:
        await apply_file(runtime, new)
    except (NumberError, *STORE_ERRORS) as error:
        log.error("reload: [[numbers]] not applied, the stored settings stay: %s", error)


@hookimpl
def readiness(runtime: Runtime) -> list[str]:
    try:
        ready = runtime.numbers.ready
    except RuntimeError:  # not connected yet: the core already says so
        return []
    return [] if ready else ["message settings (numbers) not loaded"]
