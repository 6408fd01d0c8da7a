"""`pbxsms serve`: start the bus, the plugins, the consumers and HTTP; stop them in order."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from pathlib import Path

from aiohttp import web

from pbxsms.core.config.loader import load_config
from pbxsms.core.config.problems import ConfigError
from pbxsms.core.config.settings import Config
from pbxsms.core.health import metrics
from pbxsms.core.plugins import Plugins
from pbxsms.core.serve import eventloop
from pbxsms.core.serve.app import create_app
from pbxsms.core.serve.listener import CappedSite
from pbxsms.core.serve.lock import data_dir_lock
from pbxsms.core.serve.logs import quiet_malformed_requests
from pbxsms.core.serve.runtime import Runtime

log = logging.getLogger("pbxsms.server")


def pid_file(config: Config) -> Path:
    return config.core.data_dir / "pbxsms.pid"


class Server:
    """One `pbxsms serve` process."""

    def __init__(self, config: Config, plugins: Plugins) -> None:
        self.runtime = Runtime(config, plugins)
        self._runner: web.AppRunner | None = None
        self._stop = asyncio.Event()
        self._reloads: set[asyncio.Task[None]] = set()
        self.port: int | None = None

    async def start(self) -> None:
        """Bring everything up; HTTP last, so nothing is accepted before it can be stored."""
        runtime = self.runtime
        for problem in runtime.plugins.config_warnings(runtime.config):
            log.warning("%s", problem)
        await runtime.connect()
        runtime.providers = runtime.plugins.providers(runtime)
        await runtime.plugins.startup(runtime)
        await runtime.start_consumers()
        core, http = runtime.config.core, runtime.config.file.http
        quiet_malformed_requests()
        # auto_decompress=False: a request body is never inflated (refused with 415 by
        # the app's middleware instead). The keep-alive timer runs from a connection's
        # start and from each answer until a whole request has arrived: it is the
        # deadline for headers, idle or trickled.
        self._runner = web.AppRunner(create_app(runtime), access_log=None,
                                     handle_signals=False, auto_decompress=False,
                                     keepalive_timeout=http.header_timeout)
        await self._runner.setup()
        site = CappedSite(self._runner, core.http_host, core.http_port, http.max_connections)
        try:
            await site.start()
        except OSError as error:  # a clear line instead of a traceback
            raise RuntimeError(
                f"cannot listen on {core.http_host}:{core.http_port}: "
                f"{error.strerror or error}; stop what uses it or set PBXSMS_HTTP_PORT "
                f"(PBXSMS_HTTP_HOST)") from error
        self.port = site.port or core.http_port
        # What startup built (modules, settings, plugins) lives as long as the process:
        # frozen out of the collector's sight, a full collection does not walk it all
        # and stall every request in flight.
        gc.collect()
        gc.freeze()
        # Thousands of messages in flight are tens of thousands of live objects: with
        # the default thresholds (700, 10, 10) the collector rescans them all many
        # times a second; a larger youngest generation collects as much, less often.
        # An outbound burst (3,000 in flight) peaks between 50,000 and 200,000 young
        # objects: at 50,000 it collected about 20 times in 20,000 messages, up to 45 ms
        # each (8 % of its CPU); at 200,000 not once.
        gc.set_threshold(200_000, 20, 10)
        log.info("pbxsms serving on http://%s:%s (event loop: %s)", core.http_host, self.port,
                 eventloop.name())

    async def stop(self) -> None:
        """Stop taking requests, let consumers finish, close the bus."""
        runtime = self.runtime
        runtime.stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await runtime.stop_consumers()
        await runtime.plugins.shutdown(runtime)
        await runtime.close()
        log.info("pbxsms stopped")

    async def reload(self) -> None:
        """Re-read `.env` and the TOML file; keep the old settings when the new are bad."""
        old = self.runtime.config
        try:
            new, _ = load_config(old.env_file, old.core.config, plugins=self.runtime.plugins)
        except ConfigError as error:
            metrics.RELOADS.labels("rejected").inc()
            log.error("reload rejected, keeping the running settings: %s", error)
            return
        await self.runtime.reload(new)
        metrics.RELOADS.labels("applied").inc()
        log.info("settings reloaded")

    def request_stop(self) -> None:
        self._stop.set()

    def install_signals(self) -> None:
        """SIGTERM/SIGINT stop gracefully, SIGHUP reloads; installed before anything starts."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._track(loop.create_task(self.reload())))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)


async def serve(config: Config, plugins: Plugins) -> None:
    """Run until SIGTERM/SIGINT; SIGHUP reloads the settings. The data folder is locked
    before anything starts: a second gateway on it stops here (AlreadyRunning)."""
    with data_dir_lock(config.core.data_dir):
        await _serve(config, plugins)


async def _serve(config: Config, plugins: Plugins) -> None:
    server = Server(config, plugins)
    pid_path = pid_file(config)
    server.install_signals()
    try:
        await server.start()
        pid_path.parent.mkdir(parents=True, exist_ok=True)
        pid_path.write_text(str(os.getpid()))
        await server._stop.wait()
    finally:
        await server.stop()
        with contextlib.suppress(OSError):
            if pid_path.read_text().strip() == str(os.getpid()):
                pid_path.unlink()
