"""`pbxsms numbers ...`: message settings from the shell, through the gateway's HTTP API
(whose small client `pbxsms messages` uses too).

Going through the API means one place validates (providers included) and every running
instance sees the change at once. It needs PBXSMS_API_TOKEN (read from the environment or
`.env`, as the gateway does) and the gateway's address (PBXSMS_HTTP_HOST and
PBXSMS_HTTP_PORT, or `--url`).
"""

from __future__ import annotations

import csv
import json
import re
import sys
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click

from pbxsms.core.config.problems import ConfigError
from pbxsms.core.config.settings import default_env_file, load_core

CHUNK_BYTES = 48 * 1024  # under the API's 64 KiB body limit


def exit_with(message: str) -> NoReturn:
    """Say what went wrong, named by the command group (`pbxsms numbers`, `pbxsms
    messages`: both use this client), and exit 1 (`fail` is a doctor finding, not this)."""
    context = click.get_current_context(silent=True)
    words = context.command_path.split() if context is not None else []
    group = words[1] if len(words) > 1 else "numbers"
    click.echo(f"pbxsms {group}: {message}", err=True)
    sys.exit(1)


@dataclass
class Api:
    """A small client of `/api/v1/numbers`."""

    url: str
    token: str

    def call(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 (the operator's own gateway URL)
            self.url.rstrip("/") + path, data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}",
                     "Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        except (urllib.error.URLError, OSError) as error:
            exit_with(f"cannot reach the gateway at {self.url}: {getattr(error, 'reason', error)} "
                 "(is `pbxsms serve` running? otherwise give --url)")
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        if status == 401:
            exit_with("the gateway refused the API token: PBXSMS_API_TOKEN must be the one the "
                 f"gateway runs with ({_error(payload)})")
        return status, payload


def _error(payload: Any) -> str:
    if isinstance(payload, dict) and "error" in payload:
        field = payload.get("field")
        return f"{field}: {payload['error']}" if field else str(payload["error"])
    return "no details"


def _number_path(number: str) -> str:
    return "/api/v1/numbers/" + urllib.parse.quote(number, safe="")


def _api(env_file: Path | None, url: str | None) -> Api:
    try:
        core = load_core(env_file if env_file is not None else default_env_file())
    except ConfigError as error:
        exit_with(str(error))
    if core.api_token is None or not core.api_token.get_secret_value():
        exit_with("PBXSMS_API_TOKEN is unset: set it (environment or .env) to the gateway's token")
    if url is None:
        # A gateway listening on every interface is reached on loopback.
        wildcard = ("", "0.0.0.0", "::")  # noqa: S104 (compared, not bound)
        host = core.http_host if core.http_host not in wildcard else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        url = f"http://{host}:{core.http_port}"
    return Api(url, core.api_token.get_secret_value())


def _options(command: Any) -> Any:
    command = click.option("--url", default=None, envvar="PBXSMS_API_URL",
                           help="The gateway's base URL (default: from PBXSMS_HTTP_HOST and "
                           "PBXSMS_HTTP_PORT; env PBXSMS_API_URL).")(command)
    return click.option("--env-file", type=click.Path(path_type=Path), default=None,
                        help="Settings file (default: ./.env, PBXSMS_ENV_FILE).")(command)


@click.group("numbers")
def numbers() -> None:
    """Message settings per number (provider, extension, tenant, email), live."""


@numbers.command("list")
@click.option("--extension", default=None, help="Only this extension's numbers.")
@click.option("--domain", default=None, help="Only this tenant's numbers.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_options
def list_command(extension: str | None, domain: str | None, as_json: bool,
                 env_file: Path | None, url: str | None) -> None:
    """List every number's message settings."""
    query = urllib.parse.urlencode({k: v for k, v in
                                    (("extension", extension), ("domain", domain)) if v})
    status, payload = _api(env_file, url).call("GET", "/api/v1/numbers" +
                                               (f"?{query}" if query else ""))
    if status != 200:
        exit_with(_error(payload))
    records = payload["numbers"]
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    if not records:
        click.echo("no numbers")
        return
    rows = [[r["number"], r["provider"], r["extension"] or "-", r["domain"] or "-",
             "yes" if r["enabled"] else "no", ",".join(r["email"]) or "-",
             r["description"]] for r in records]
    header = ["NUMBER", "PROVIDER", "EXTENSION", "DOMAIN", "ENABLED", "EMAIL", "DESCRIPTION"]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True))
                   .rstrip())


@numbers.command("set")
@click.argument("number")
@click.option("--provider", default=None, help="Provider plugin, e.g. clicksend.")
@click.option("--extension", default=None, help="Extension ('' to clear).")
@click.option("--domain", default=None, help="Tenant domain ('' to clear).")
@click.option("--email", multiple=True, help="Email for copies; repeat for several "
              "('' to clear).")
@click.option("--enabled/--disabled", default=None, help="Route messages to it or not.")
@click.option("--description", default=None)
@click.option("--mobileapp-org", default=None, help="Mobile app organisation id.")
@click.option("--sip/--no-sip", default=None, help="Deliver to the extension's SIP phones too.")
@_options
def set_command(number: str, provider: str | None, extension: str | None,
                domain: str | None, email: tuple[str, ...], enabled: bool | None,
                description: str | None, mobileapp_org: str | None, sip: bool | None,
                env_file: Path | None, url: str | None) -> None:
    """Create or change a number's settings; options not given keep their value."""
    api = _api(env_file, url)
    status, current = api.call("GET", _number_path(number))
    if status == 404:
        current = {}
    elif status != 200:
        exit_with(_error(current))
    changes = {"provider": provider, "extension": extension, "domain": domain,
               "enabled": enabled, "description": description,
               "mobileapp_org": mobileapp_org, "sip": sip,
               "email": [e for e in email if e] if email else None}
    record = {**current, **{k: v for k, v in changes.items() if v is not None}}
    record.pop("number", None)
    status, payload = api.call("PUT", _number_path(number), record)
    if status not in (200, 201):
        exit_with(_error(payload))
    click.echo(f"{'created' if status == 201 else 'updated'} {payload['number']}")


@numbers.command("remove")
@click.argument("number")
@_options
def remove_command(number: str, env_file: Path | None, url: str | None) -> None:
    """Remove a number's settings (messages to it become unroutable)."""
    status, payload = _api(env_file, url).call("DELETE", _number_path(number))
    if status != 204:
        exit_with(_error(payload))
    click.echo(f"removed {number}")


@numbers.command("import")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["auto", "toml", "csv"]), default="auto",
              help="File format (default: by extension).")
@_options
def import_command(file: Path, fmt: str, env_file: Path | None, url: str | None) -> None:
    """Create or update the numbers of a TOML or CSV file: all of them, or none.

    TOML: `[[numbers]]` tables as in the config file. CSV: a header row naming the
    fields (number, provider, extension, domain, email, enabled, description,
    mobileapp_org); several emails in one cell are separated by `;`; empty cells keep
    the default.
    """
    if fmt == "auto":
        fmt = "csv" if file.suffix.lower() == ".csv" else "toml"
    rows, labels = read_csv(file) if fmt == "csv" else read_toml(file)
    if not rows:
        exit_with(f"{file}: no numbers in it")
    api = _api(env_file, url)
    chunks = list(_chunks(rows))
    # Validate every row first (dry run), then write: one bad row imports nothing.
    seen: dict[str, int] = {}
    for start, chunk in chunks:
        status, payload = api.call("PUT", "/api/v1/numbers?dry_run=true", {"numbers": chunk})
        if status != 200:
            exit_with(f"{_locate(payload, start, labels)}; nothing imported")
        for offset, record in enumerate(payload["numbers"]):
            index = start + offset
            if record["number"] in seen:
                exit_with(f"{labels[index]}: number: {record['number']} is also "
                     f"{labels[seen[record['number']]]}; nothing imported")
            seen[record["number"]] = index
    written = 0
    for start, chunk in chunks:
        status, payload = api.call("PUT", "/api/v1/numbers", {"numbers": chunk})
        if status != 200:
            exit_with(f"{_locate(payload, start, labels)} (rows before it were written; "
                 "importing again is safe)")
        written += payload["written"]
    click.echo(f"imported {len(rows)} numbers from {file} ({written} changed)")


def _chunks(rows: list[dict[str, Any]]) -> list[tuple[int, list[dict[str, Any]]]]:
    chunks: list[tuple[int, list[dict[str, Any]]]] = []
    size = 0
    for index, row in enumerate(rows):
        row_size = len(json.dumps(row)) + 2
        if not chunks or size + row_size > CHUNK_BYTES:
            chunks.append((index, []))
            size = 0
        chunks[-1][1].append(row)
        size += row_size
    return chunks


def _locate(payload: Any, start: int, labels: list[str]) -> str:
    """The API's error with `numbers[i].field` turned into the file's row."""
    field = payload.get("field") if isinstance(payload, dict) else None
    match = re.fullmatch(r"numbers\[(\d+)\]\.?(.*)", field or "")
    if match is None:
        return _error(payload)
    index = start + int(match[1])
    label = labels[index] if index < len(labels) else f"row {index + 1}"
    return f"{label}: {match[2] or 'row'}: {payload['error']}"


def read_toml(file: Path) -> tuple[list[dict[str, Any]], list[str]]:
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        exit_with(f"{file}: cannot read TOML: {error}")
    rows = data.get("numbers", [])
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        exit_with(f"{file}: expected [[numbers]] tables")
    return rows, [f"row {i + 1} ([[numbers]] #{i + 1})" for i in range(len(rows))]


def read_csv(file: Path) -> tuple[list[dict[str, Any]], list[str]]:
    rows: list[dict[str, Any]] = []
    labels: list[str] = []
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None:
                return [], []
            for raw in reader:
                row = {(key or "").strip(): (value or "").strip()
                       for key, value in raw.items() if key is not None}
                extra = raw.get(None)
                if extra:
                    exit_with(f"{file}: line {reader.line_num}: more cells than header columns")
                row = {key: value for key, value in row.items() if value}
                if row:
                    rows.append(row)
                    labels.append(f"row {len(rows)} (line {reader.line_num})")
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        exit_with(f"{file}: cannot read CSV: {error}")
    return rows, labels
