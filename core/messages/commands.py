"""`pbxsms messages ...`: read, list, resend and redeliver through the gateway's API."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import click

from pbxsms.core.numbers.commands import _api, _error, _options, exit_with


@click.group("messages")
def messages() -> None:
    """Messages: what failed or was unroutable, read and sent again."""


@messages.command("list")
@click.option("--status", "state", required=True,
              help="failed, unroutable, dead (the dead letters) or any other state.")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_options
def list_command(state: str, limit: int, as_json: bool, env_file: Path | None,
                 url: str | None) -> None:
    """List the messages now in a state, in the order they reached it (`dead`: the dead
    letters)."""
    query = urllib.parse.urlencode({"status": state, "limit": limit})
    status, payload = _api(env_file, url).call("GET", f"/api/v1/messages?{query}")
    if status != 200:
        exit_with(_error(payload))
    rows: list[dict[str, Any]] = payload.get("dead") or payload.get("messages") or []
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo(f"no {state} messages")
    elif "dead" in payload:
        for letter in rows:
            click.echo(f"{letter['id']}  {letter['consumer']}  {letter['at']}  "
                       f"after {letter['attempts']} attempt(s): {letter['reason']}")
    else:
        for record in rows:
            click.echo(f"{record['id']}  {record['direction']}  {record['state']}  "
                       f"{record['updated_at']}  {record['summary']}")


@messages.command("show")
@click.argument("message_id")
@_options
def show_command(message_id: str, env_file: Path | None, url: str | None) -> None:
    """Print a message (its text included) and its status history as JSON."""
    status, payload = _api(env_file, url).call(
        "GET", f"/api/v1/messages/{urllib.parse.quote(message_id, safe='')}")
    if status != 200:
        exit_with(_error(payload))
    click.echo(json.dumps(payload, indent=2))


@messages.command("resend")
@click.argument("ids", nargs=-1, required=True)
@_options
def resend_command(ids: tuple[str, ...], env_file: Path | None, url: str | None) -> None:
    """Send failed or dead-lettered outbound messages again (each once, however often
    this is run)."""
    _each(env_file, url, ids, "resend", lambda p: f"resent as {p['id']}"
          + (" (already resent)" if p.get("duplicate") else ""))


@messages.command("redeliver")
@click.argument("ids", nargs=-1, required=True)
@click.option("--force", is_flag=True,
              help="Also to the people who already have it (forgets the delivery ledger).")
@_options
def redeliver_command(ids: tuple[str, ...], force: bool, env_file: Path | None,
                      url: str | None) -> None:
    """Deliver inbound messages again to their number's channels, routed as of now
    (an unroutable one, once its number has message settings)."""
    _each(env_file, url, ids, "redeliver" + ("?force=true" if force else ""),
          lambda p: f"redelivered (redelivery {p['redelivery']})")


def _each(env_file: Path | None, url: str | None, ids: tuple[str, ...], action: str,
          done: Any) -> None:
    api = _api(env_file, url)
    failed = 0
    for message_id in ids:
        status, payload = api.call(
            "POST", f"/api/v1/messages/{urllib.parse.quote(message_id, safe='')}/{action}")
        if status == 202:
            click.echo(f"{message_id}: {done(payload)}")
        else:
            failed += 1
            click.echo(f"{message_id}: {_error(payload)}", err=True)
    if failed:
        raise SystemExit(1)
