"""Logging: one line per event with level and component; JSON for machines.

Message bodies and secrets are never passed to a logger at INFO or above; the message id
travels in `extra={"msg_id": ...}`.
"""

from __future__ import annotations

import asyncio
import collections.abc
import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import TextIO

from aiohttp.http_exceptions import HttpProcessingError


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "component": record.name,
            "message": record.getMessage(),
        }
        msg_id = getattr(record, "msg_id", None)
        if msg_id:
            line["msg_id"] = msg_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`<local time>,<ms> <LEVEL> <component>: <message>[ [id=<msg id>]]`, then any
    exception; what the format string `%(asctime)s %(levelname)-7s %(name)s:
    %(message)s` would make, written by hand with the time's text kept for the second it
    names (the stock way took half of an INFO line's cost, on every webhook)."""

    def __init__(self) -> None:
        super().__init__()
        self._stamp = (-1, "")  # (second, its text): one tuple, replaced whole

    def format(self, record: logging.LogRecord) -> str:
        second, stamp = self._stamp
        if int(record.created) != second:
            second = int(record.created)
            stamp = time.strftime(self.default_time_format, self.converter(record.created))
            self._stamp = (second, stamp)
        msg_id = getattr(record, "msg_id", None)
        line = (f"{stamp},{int(record.msecs):03d} {record.levelname:<7} {record.name}: "
                f"{record.getMessage()}{f' [id={msg_id}]' if msg_id else ''}")
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class TurnHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes the lines of one event-loop turn together.

    One write (and flush) per turn instead of one per line: a line per webhook was a
    write syscall per webhook. Held are INFO and lower lines of the running turn, at most
    `HELD`, written by a callback the turn's first line schedules. A WARNING or worse,
    `flush()` and `logging.shutdown()` (at exit) write at once, after what is held, so the
    order is kept; so does a line from a thread with no running loop while nothing is
    held. A `kill -9` loses the held lines: those of the last turn, a few milliseconds at
    full load; the messages themselves are stored and keep their status (the API and
    `pbxsms messages` show them).
    """

    HELD = 256

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._held: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        held = self._held
        if record.levelno < logging.WARNING and len(held) < self.HELD:
            if held:  # the turn's flush is scheduled already
                held.append(line)
                return
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop in this thread: written below, now
                pass
            else:
                held.append(line)
                return
        held.append(line)
        self.flush()

    def flush(self) -> None:
        """Write what is held (the handler's lock is reentrant: `emit` holds it)."""
        self.acquire()
        try:
            held, self._held = self._held, []
            if held:
                self._write(held)
        finally:
            self.release()

    def _write(self, lines: list[str]) -> None:
        try:
            self.stream.write("".join(lines))
            self.stream.flush()
        except Exception:  # as StreamHandler: a broken stream must not stop the gateway
            self.handleError(logging.makeLogRecord({"msg": "".join(lines)}))


# What `Logger._log` names as a record's source while `logging._srcfile` is None.
_NO_SOURCE = "(unknown file)"


class LeanRecord(logging.LogRecord):
    """Python 3.11's `LogRecord` as `setup_logging` configures it, without its path work.

    With no source file looked up (`logging._srcfile = None`), nor thread or process
    names, the stock record still derives `filename` and `module` from the text
    "(unknown file)" through `os.path` (a fifth of an INFO line's cost, on every
    webhook); they are that text. The attributes are those of the stock record, tested
    against it; anything else (another source, the flags set again) is the stock one.
    """

    def __init__(self, name: str, level: int, pathname: str, lineno: int, msg: object,
                 args: object, exc_info: object, func: str | None = None,
                 sinfo: str | None = None, **kwargs: object) -> None:
        if (pathname != _NO_SOURCE or logging.logThreads or logging.logProcesses
                or logging.logMultiprocessing):
            super().__init__(name, level, pathname, lineno, msg, args,  # type: ignore[arg-type]
                             exc_info, func, sinfo, **kwargs)  # type: ignore[arg-type]
            return
        ct = time.time()
        self.name = name
        self.msg = msg
        if (args and len(args) == 1  # type: ignore[arg-type]
                and isinstance(args[0], collections.abc.Mapping)  # type: ignore[index]
                and args[0]):  # type: ignore[index]
            args = args[0]  # type: ignore[index]
        self.args = args  # type: ignore[assignment]
        self.levelname = logging.getLevelName(level)
        self.levelno = level
        self.pathname = self.filename = self.module = pathname
        self.exc_info = exc_info  # type: ignore[assignment]
        self.exc_text = None
        self.stack_info = sinfo
        self.lineno = lineno
        self.funcName = func  # type: ignore[assignment]
        self.created = ct
        self.msecs = int((ct - int(ct)) * 1000) + 0.0
        self.relativeCreated = (ct - logging._startTime) * 1000  # type: ignore[attr-defined]
        self.thread = self.threadName = self.processName = self.process = None


class MalformedRequests(logging.Filter):
    """aiohttp logs a request its parser refused (400: bytes that are not HTTP, a bad
    URL) with a traceback at ERROR: from the internet that is noise anyone can make.
    One INFO line each instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError) and (error.code or 400) < 500:
            record.msg = f"{record.msg}: malformed request refused ({error.code}): %s"
            record.args = (*(record.args or ()), type(error).__name__)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def quiet_malformed_requests() -> None:
    """Install `MalformedRequests` on aiohttp's server logger (once)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(existing, MalformedRequests) for existing in logger.filters):
        logger.addFilter(MalformedRequests())


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once for the process (stderr)."""
    handler = TurnHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    # Our formats name no source line, thread or process: skip collecting them for
    # every record (the logging HOWTO's "Optimization" settings).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if sys.version_info[:2] == (3, 11) and logging.getLogRecordFactory() is logging.LogRecord:
        logging.setLogRecordFactory(LeanRecord)  # its body is 3.11's
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party chatter stays at WARNING unless we debug.
    for name in ("aiohttp.access", "nats", "asyncio"):
        logging.getLogger(name).setLevel(logging.WARNING if level != "DEBUG" else level)
