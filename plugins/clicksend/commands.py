"""`pbxsms clicksend ...`: the operator's ClickSend helpers."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import click
from aiohttp import ClientSession
from yarl import URL

from pbxsms.core.plugin_api import (
    CarrierError,
    ConfigError,
    InvalidNumber,
    config_option,
    env_option,
    listen_options,
    load_or_exit,
    load_plugin_only,
    public_urls_or_exit,
    run_simulator,
    to_e164,
)
from pbxsms.plugins.clicksend.client import ClickSendClient
from pbxsms.plugins.clicksend.settings import ClickSendSettings
from pbxsms.plugins.clicksend.webhooks import DLR_PATH, SMS_PATH, webhook_token

T = TypeVar("T")


@click.group("clicksend")
def clicksend() -> None:
    """ClickSend helpers: webhook URLs, subaccounts, numbers, a local simulator."""


@clicksend.command("webhook-url")
@env_option
@config_option
def webhook_url(env_file: Path | None, config_path: Path | None) -> None:
    """Print the inbound and receipt webhook URLs to paste into ClickSend (token included)."""
    config, _ = load_or_exit(env_file, config_path)
    sms_url, dlr_url = public_urls_or_exit(config, "clicksend", "ClickSend", SMS_PATH,
                                           DLR_PATH)
    token = webhook_token(config.plugin("clicksend", ClickSendSettings))
    query = {"token": token} if token else {}
    click.echo("Inbound SMS (ClickSend: Message Settings > SMS > Inbound Rules, action URL, "
               "any webhook type):")
    click.echo(f"  {URL(sms_url).with_query(query)}")
    click.echo("Delivery receipts (ClickSend: Message Settings > SMS > Delivery Reports, "
               "action URL):")
    click.echo(f"  {URL(dlr_url).with_query(query)}")
    if token is None:
        click.echo("warning: CLICKSEND_WEBHOOK_TOKEN is unset, so these URLs carry no secret "
                   "and anyone who finds them can inject messages", err=True)


def load_settings(env_file: Path | None, config_path: Path | None) -> ClickSendSettings:
    """CLICKSEND_* from the environment, `.env` and `[clicksend]`; exit 2 when unusable."""
    try:
        return load_plugin_only("clicksend", ClickSendSettings, env_file, config_path)
    except ConfigError as error:
        _fail(f"configuration problems: {error}", 2)


def call_clicksend(settings: ClickSendSettings,
                   call: Callable[[ClickSendClient], Awaitable[T]]) -> T:
    """Run one API call; on failure print the reason (no secrets) and exit 1."""
    if not settings.can_send:
        _fail("set CLICKSEND_USERNAME and CLICKSEND_API_KEY (in .env or the environment)", 2)

    async def run() -> T:
        async with ClientSession() as http:
            return await call(ClickSendClient(http, settings))

    try:
        return asyncio.run(run())
    except CarrierError as error:
        _fail(str(error), 1)


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows,
                                                                        strict=False)]
    for row in [headers, *rows]:
        click.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths,
                                                                           strict=True))
                   .rstrip())


def _fail(message: str, status: int) -> NoReturn:
    click.echo(f"pbxsms: {message}", err=True)
    sys.exit(status)


@clicksend.command("subaccounts")
@env_option
@config_option
def subaccounts(env_file: Path | None, config_path: Path | None) -> None:
    """List the account's subaccounts (step 3 of the FS PBX ClickSend guide).

    Pick the one whose inbound webhooks pbxsms should accept and put its `subaccount_id`
    in CLICKSEND_SUBACCOUNT_ID. API keys in ClickSend's answer are never printed.
    """
    settings = load_settings(env_file, config_path)
    records = call_clicksend(settings, lambda client: client.subaccounts())
    if not records:
        click.echo("No subaccounts.")
        return
    rows = [[str(r.get("subaccount_id", "")), str(r.get("api_username") or ""),
             str(r.get("email") or ""),
             "CLICKSEND_USERNAME" if r.get("api_username") == settings.username else ""]
            for r in records]
    print_table(["subaccount_id", "api_username", "email", "in use"], rows)
    click.echo("\nSet CLICKSEND_SUBACCOUNT_ID to the subaccount_id whose inbound messages "
               "pbxsms should accept.")
    if settings.subaccount_id and settings.subaccount_id not in {row[0] for row in rows}:
        click.echo(f"Warning: CLICKSEND_SUBACCOUNT_ID={settings.subaccount_id} is not one "
                   "of them.")


@clicksend.command("numbers")
@env_option
@config_option
def numbers(env_file: Path | None, config_path: Path | None) -> None:
    """List the account's dedicated numbers (use them as `[[numbers]]` number)."""
    settings = load_settings(env_file, config_path)
    records = call_clicksend(settings, lambda client: client.numbers())
    if not records:
        click.echo("No dedicated numbers on this account.")
        return
    rows = []
    for record in records:
        status = record.get("status")
        state = status.get("name") or status.get("label") if isinstance(status, dict) else ""
        rows.append([str(record.get("dedicated_number") or ""), str(record.get("country") or ""),
                     str(record.get("type") or ""), str(record.get("number_type") or ""),
                     str(state or "")])
    print_table(["number", "country", "type", "number_type", "status"], rows)


@clicksend.command("simulator")
@listen_options
@click.option("--username", default=None,
              help="API username it accepts (default: CLICKSEND_USERNAME, else pbxsms).")
@click.option("--api-key", default=None,
              help="API key it accepts (default: CLICKSEND_API_KEY). Never printed.")
@click.option("--subaccount-id", type=int, default=None, help="Subaccount id of that user.")
@click.option("--number", "numbers_", multiple=True,
              help="A dedicated number of the account (repeatable).")
@env_option
@config_option
def simulator(host: str, port: int, username: str | None, api_key: str | None,
              subaccount_id: int | None, numbers_: tuple[str, ...], env_file: Path | None,
              config_path: Path | None) -> None:
    """Run a local ClickSend API simulator for demos, tests and benchmarks."""
    from pbxsms.sim.clicksend import serve_forever

    settings = load_settings(env_file, config_path)
    username = username or settings.username or "pbxsms"
    if api_key is None and settings.api_key is not None:
        api_key = settings.api_key.get_secret_value()
    if not api_key:
        _fail("give --api-key or set CLICKSEND_API_KEY: the key the simulator accepts", 2)
    try:
        numbers_ = tuple(to_e164(number, "US") for number in numbers_)
    except InvalidNumber as error:
        _fail(f"--number: {error} (write it with +country code)", 2)

    run_simulator(host, port, lambda: serve_forever(host, port, username, api_key,
                                                    subaccount_id=subaccount_id,
                                                    numbers=numbers_))
