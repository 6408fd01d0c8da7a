"""The `pbxsms` command line. Plugins add groups through the `register_commands` hook."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import click

from pbxsms.core import __version__
from pbxsms.core.config.loader import (
    create_from_example,
    describe_number,
    file_numbers,
    load_config,
    redacted,
)
from pbxsms.core.config.problems import ConfigError
from pbxsms.core.config.settings import Config, default_env_file, load_core, load_file
from pbxsms.core.model.events import json_schemas
from pbxsms.core.plugins import Plugins, available_plugins
from pbxsms.core.serve import eventloop
from pbxsms.core.serve.http import public_url
from pbxsms.core.serve.logs import setup_logging

env_option = click.option("--env-file", type=click.Path(path_type=Path), default=None,
                          help="Settings file with secrets (default: ./.env, PBXSMS_ENV_FILE).")
config_option = click.option("--config", "config_path", type=click.Path(path_type=Path),
                             default=None, help="TOML file (default: PBXSMS_CONFIG or "
                             "config/pbxsms.toml).")


def load_or_exit(env_file: Path | None, config_path: Path | None) -> tuple[Config, Plugins]:
    """The configuration, or each problem on stderr and exit status 2."""
    try:
        return load_config(env_file, config_path)
    except ConfigError as error:
        report_problems(error)
        sys.exit(2)


def public_urls_or_exit(config: Config, plugin: str, carrier: str, *paths: str) -> list[str]:
    """PBXSMS_PUBLIC_URL joined with each of a plugin's webhook `paths`, for `pbxsms <carrier>
    webhook-url`; exit status 2 with the reason when the plugin is not enabled or the URL
    is unset."""
    if plugin not in config.plugins:
        click.echo(f"pbxsms: the {plugin} plugin is not in [plugins] enabled, so its "
                   "webhooks are not served", err=True)
        sys.exit(2)
    urls = [public_url(config.core.public_url, path) for path in paths]
    if None in urls:
        click.echo(f"pbxsms: set PBXSMS_PUBLIC_URL to the base URL {carrier} reaches this "
                   "gateway at, e.g. https://sms.example.com", err=True)
        sys.exit(2)
    return [url for url in urls if url is not None]


def listen_options(function: Callable[..., None]) -> Callable[..., None]:
    """`--host` and `--port` of a `pbxsms <carrier> simulator` command."""
    function = click.option("--port", type=click.IntRange(0, 65535), default=0,
                            help="Port to listen on (default: any free port).")(function)
    return click.option("--host", default="127.0.0.1", show_default=True,
                        help="Address to listen on.")(function)


def run_simulator(host: str, port: int,
                  serve: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a simulator's `serve()` until SIGTERM or SIGINT; exit status 1 when it cannot
    listen on host:port."""
    async def run() -> None:
        task = asyncio.create_task(serve())
        loop = asyncio.get_running_loop()
        for stop in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(stop, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(run())
    except OSError as error:
        click.echo(f"pbxsms: cannot listen on {host}:{port}: {error}", err=True)
        sys.exit(1)


def report_problems(error: ConfigError) -> None:
    click.echo("Configuration problems:", err=True)
    for problem in error.problems:
        click.echo(f"  {problem}", err=True)


@click.group()
@click.version_option(__version__, prog_name="pbxsms")
def cli() -> None:
    """pbxsms: two-way SMS gateway for IP PBXs, on NATS JetStream."""


@cli.command()
@env_option
@config_option
def serve(env_file: Path | None, config_path: Path | None) -> None:
    """Run the gateway until SIGTERM/SIGINT; SIGHUP (or `pbxsms reload`) reloads settings."""
    from pbxsms.core.serve.lock import data_dir_lock

    core = load_core(env_file if env_file is not None else default_env_file())
    try:
        # First: a second gateway on this data folder stops before it loads anything.
        with data_dir_lock(core.data_dir):
            from pbxsms.core.serve.server import serve as run

            example = create_from_example(config_path or core.config)
            if example is not None:
                click.echo(f"pbxsms: created {config_path or core.config} from {example}; "
                           "edit it (plugins, [[numbers]]) and `pbxsms reload`", err=True)
            config, plugins = load_or_exit(env_file, config_path)
            setup_logging(config.core.log_level, config.core.log_format)
            eventloop.run(run(config, plugins))
    except (ConnectionError, RuntimeError) as error:
        click.echo(f"pbxsms: {error}", err=True)
        sys.exit(1)


@cli.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("check")
@env_option
@config_option
def config_check(env_file: Path | None, config_path: Path | None) -> None:
    """Print the effective settings (secrets hidden) and every problem; non-zero on problems."""
    cfg, plugins = load_or_exit(env_file, config_path)
    click.echo(f"env file: {cfg.env_file or '(none)'}")
    click.echo(f"config file: {cfg.core.config}"
               f"{'' if cfg.core.config.exists() else ' (missing: defaults used)'}")
    click.echo(f"plugins enabled: {', '.join(plugins.enabled) or '(none)'}")
    sections: dict[str, Any] = {"core": cfg.core, **cfg.plugins}
    for name, settings in sections.items():
        click.echo(f"[{name}]")
        for key, value in redacted(settings).items():
            click.echo(f"  {key} = {value}")
    for name, table in (("bus", cfg.file.bus), ("outbound", cfg.file.outbound)):
        click.echo(f"[{name}]")
        for key, value in table.model_dump().items():
            click.echo(f"  {key} = {value}")
    click.echo(f"numbers in config file: {len(cfg.file.numbers)} "
               f"(read with PBXSMS_DEFAULT_REGION={cfg.core.default_region})")
    for index, (row, record) in enumerate(zip(cfg.file.numbers, file_numbers(cfg, plugins),
                                              strict=True)):
        click.echo(f"  {describe_number(index, row, record)}")
    problems = plugins.config_warnings(cfg)
    if problems:
        click.echo("Problems:")
        for problem in problems:
            click.echo(f"  {problem}")
        sys.exit(1)
    click.echo("OK: no problems found")


@cli.command()
@env_option
@config_option
def doctor(env_file: Path | None, config_path: Path | None) -> None:
    """Check the settings against NATS, the stream, ClickSend, SMTP and the app; say how to
    fix each problem. Sends nothing. Exit status 1 on problems, 2 on unusable settings."""
    from pbxsms.core.health.doctor import run_doctor

    config, plugins = load_or_exit(env_file, config_path)
    if not asyncio.run(run_doctor(config, plugins, click.echo)):
        sys.exit(1)


@cli.command()
@env_option
def reload(env_file: Path | None) -> None:
    """Ask the running `pbxsms serve` (found by its pid file) to reload its settings."""
    core = load_core(env_file if env_file is not None else default_env_file())
    path = core.data_dir / "pbxsms.pid"
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as error:
        click.echo(f"pbxsms: no running gateway found via {path}: {error}", err=True)
        sys.exit(1)
    click.echo(f"sent SIGHUP to pbxsms (pid {pid}); its log says whether the reload applied")


@cli.command()
def schema() -> None:
    """Print the JSON Schemas of the bus events, keyed by subject."""
    click.echo(json.dumps(json_schemas(), indent=2))


@cli.command("plugins")
@env_option
@config_option
def plugins_command(env_file: Path | None, config_path: Path | None) -> None:
    """List available plugins and which are enabled."""
    core = load_core(env_file if env_file is not None else default_env_file())
    file = load_file(config_path or core.config)
    enabled = set(file.plugins.enabled)
    for name, source in sorted(available_plugins().items()):
        mark = "enabled " if name in enabled else "disabled"
        click.echo(f"{mark}  {name:<12} {source}")
    for name in sorted(enabled - set(available_plugins())):
        click.echo(f"UNKNOWN   {name:<12} named in [plugins] enabled but not installed")


@cli.command()
@click.option("--from", "from_", default=None, help="Our number to send from (E.164).")
@click.option("--extension", default=None, help="Send from this extension's number instead.")
@click.option("--to", required=True, help="The recipient's number.")
@click.option("--url", default=None,
              help="The gateway (default: http://PBXSMS_HTTP_HOST:PBXSMS_HTTP_PORT).")
@click.option("--wait", is_flag=True, help="Wait until the provider accepted or refused it.")
@click.option("--timeout", type=float, default=60.0, show_default=True,
              help="Seconds --wait waits.")
@env_option
@click.argument("text")
def send(from_: str | None, extension: str | None, to: str, url: str | None, wait: bool,
         timeout: float, env_file: Path | None, text: str) -> None:
    """Send TEXT (`-` reads it from stdin) through the running gateway's send API.

    Uses PBXSMS_API_TOKEN from the environment or `.env`; prints the message id.
    """
    from pbxsms.core.outbound.commands import SendFailed, send_via_api

    core = load_core(env_file if env_file is not None else default_env_file())
    if core.api_token is None or not core.api_token.get_secret_value():
        click.echo("pbxsms: set PBXSMS_API_TOKEN (the gateway's API token)", err=True)
        sys.exit(2)
    if from_ is None and extension is None:
        click.echo("pbxsms: give --from (our number) or --extension", err=True)
        sys.exit(2)
    body = sys.stdin.read() if text == "-" else text
    host = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(  # noqa: S104
        core.http_host, core.http_host)
    base = (url or f"http://{host}:{core.http_port}").rstrip("/")
    request = {"from": from_, "extension": extension, "to": to, "body": body, "source": "cli"}
    try:
        asyncio.run(send_via_api(base, core.api_token.get_secret_value(),
                                 {k: v for k, v in request.items() if v is not None},
                                 wait, timeout, click.echo))
    except SendFailed as error:
        click.echo(f"pbxsms: {error}", err=True)
        sys.exit(1)


def build_cli() -> click.Group:
    """The CLI with every available plugin's commands."""
    try:
        Plugins(None).register_commands(cli)
    except ConfigError as error:  # a broken entry point must not take the CLI down
        click.echo(f"pbxsms: plugin commands unavailable: {error}", err=True)
    return cli


def main() -> None:
    try:
        # `serve` needs no plugin's commands: importing every plugin first would only
        # delay the data folder lock that a second start must meet at once.
        command = cli if sys.argv[1:2] == ["serve"] else build_cli()
        command(prog_name="pbxsms")
    except ConfigError as error:  # any command: name each bad setting, no traceback
        report_problems(error)
        sys.exit(2)
