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
    """Make the file's `[[numbers]]` the settings of the numbers it owns (all or none):
    its rows are stored, marked as managed by the file (its path), and numbers this file
    managed but no longer lists are removed. Numbers managed through the API are never
    changed: a row for one is ignored (with a warning) unless it says the same. How many
    changed."""
    store = runtime.numbers
    path = str(config.core.config)
    rows = store.validate_many(config.file.numbers, where="toml.numbers")
    records, listed = [], set()
    for row in rows:
        record = row.model_copy(update={"managed_by_file": path})
        listed.add(record.number)
        stored = store.get(record.number)
        if (stored is not None and stored.managed_by_file is None
                and stored.model_copy(update={"managed_by_file": path}) != record):
            log.warning("%s is managed through the API: its [[numbers]] row in %s is ignored "
                        "(remove the number with `pbxsms numbers remove` to let the file "
                        "own it)", record.number, path)
            continue
        records.append(record)
    written = await store.upsert(records)
    # Only this file's: an instance with another file (or none) leaves them alone.
    gone = [r.number for r in store.all()
            if r.managed_by_file == path and r.number not in listed]
    for number in gone:
        await store.delete(number)
    log.info("message settings: %d numbers in %s, %d changed, %d removed", len(rows), path,
             written, len(gone))
    return written + len(gone)


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
