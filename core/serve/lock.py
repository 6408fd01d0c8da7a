"""One gateway per data folder: an flock'd lock file under PBXSMS_DATA_DIR.

Two gateways on one data folder would run two nats-servers on one JetStream store and
fight over the pid file that `pbxsms reload` reads. The kernel drops the lock when the
process ends, however it ends, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = "pbxsms.lock"

# Data folders this process holds: `pbxsms serve` takes the lock before loading anything
# (a second start must fail fast), and Server's `serve` takes it again for other callers.
_held: set[Path] = set()


class AlreadyRunning(RuntimeError):
    """Another gateway holds the data folder; the message names its pid."""

    def __init__(self, pid: int | None, path: Path) -> None:
        self.pid = pid
        who = f"pid {pid}" if pid is not None else f"lock {path}"
        super().__init__(f"already running ({who}); use pbxsms reload "
                         f"(one gateway per data folder: {path.parent})")


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[Path]:
    """Hold the data folder for the block; AlreadyRunning, changing nothing, when taken."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = (data_dir / LOCK_NAME).resolve()
    if path in _held:
        yield path
        return
    # Not truncated on open: the holder's pid stays readable until the lock is ours.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(_pid(fd), path) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held.add(path)
        try:
            yield path
        finally:
            _held.discard(path)
    finally:
        os.close(fd)  # releases the lock


def _pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return None
