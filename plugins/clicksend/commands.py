"""`pbxsms clicksend ...`: the operator's ClickSend helpers."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from yarl import URL

from pbxsms.core.cli import config_option, env_option, load_or_exit
from pbxsms.plugins.clicksend.webhooks import DLR_PATH, SMS_PATH, webhook_token


@click.group("clicksend")
def clicksend() -> None:
    """ClickSend helpers: webhook URLs, subaccounts, numbers, a local simulator."""


@clicksend.command("webhook-url")
@env_option
@config_option
def webhook_url(env_file: Path | None, config_path: Path | None) -> None:
    """Print the inbound and receipt webhook URLs to paste into ClickSend (token included)."""
    config, _ = load_or_exit(env_file, config_path)
    if "clicksend" not in config.plugins:
        click.echo("pbxsms: the clicksend plugin is not in [plugins] enabled, so these "
                   "webhooks are not served", err=True)
        sys.exit(2)
    base = (config.core.public_url or "").strip().rstrip("/")
    if not base:
        click.echo("pbxsms: set PBXSMS_PUBLIC_URL to the base URL ClickSend reaches this "
                   "gateway at, e.g. https://sms.example.com", err=True)
        sys.exit(2)
    token = webhook_token(config.plugin("clicksend"))
    query = {"token": token} if token else {}
    click.echo("Inbound SMS (ClickSend: Message Settings > SMS > Inbound Rules, action URL, "
               "any webhook type):")
    click.echo(f"  {URL(base + SMS_PATH).with_query(query)}")
    click.echo("Delivery receipts (ClickSend: Message Settings > SMS > Delivery Reports, "
               "action URL):")
    click.echo(f"  {URL(base + DLR_PATH).with_query(query)}")
    if token is None:
        click.echo("warning: CLICKSEND_WEBHOOK_TOKEN is unset, so these URLs carry no secret "
                   "and anyone who finds them can inject messages", err=True)
