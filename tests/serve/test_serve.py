"""`pbxsms serve` as a real subprocess: embedded NATS, readiness, signals, restarts."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbxsms.bus.embedded import EMBEDDED_DIR, embedded_url
from tests.helpers import free_port, write_env
from tests.procs import PBXSMS, Proc, alive, nats_server_children


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    write_env(tmp_path / ".env", PBXSMS_DATA_DIR=str(tmp_path / "var"))
    yield tmp_path


def test_serve_starts_embedded_nats_and_stops_cleanly_on_sigterm(workdir: Path) -> None:
    proc = Proc(workdir, free_port(), free_port(), {})
    try:
        proc.wait_ready()
        assert proc.get("/healthz") == (200, {"status": "ok"})
        embedded = nats_server_children(proc.popen.pid)
        assert len(embedded) == 1, "an embedded nats-server runs"
        started = time.monotonic()
        assert proc.stop(signal.SIGTERM) == 0
        assert time.monotonic() - started < 5
        assert not any(alive(pid) for pid in embedded), "no nats-server left running"
    finally:
        if proc.popen.poll() is None:
            proc.popen.kill()
    log = proc.log.read_text()
    # Started with no .env secrets: it says what is missing and what will not work.
    assert "CLICKSEND_API_KEY: unset" in log
    assert "every ClickSend webhook is refused" in log
    assert (workdir / "var" / "nats" / "jetstream").is_dir()


def test_sigint_stops_cleanly_too(workdir: Path) -> None:
    proc = Proc(workdir, free_port(), free_port(), {})
    proc.wait_ready()
    assert proc.stop(signal.SIGINT) == 0


def test_taken_port_is_a_clear_error_naming_nats_url(workdir: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = Proc(workdir, free_port(), port, {})
        code = proc.popen.wait(30)
    assert code != 0
    log = proc.log.read_text()
    assert "NATS_URL" in log and f"127.0.0.1:{port}" in log
    assert "Traceback" not in log


def test_taken_http_port_is_a_clear_error_naming_the_setting(workdir: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = Proc(workdir, port, free_port(), {})
        code = proc.popen.wait(30)
    assert code == 1
    log = proc.log.read_text()
    assert f"pbxsms: cannot listen on 127.0.0.1:{port}" in log and "PBXSMS_HTTP_PORT" in log
    assert "Traceback" not in log


def test_events_survive_a_restart(workdir: Path) -> None:
    import asyncio

    import nats

    nats_port = free_port()

    async def publish_and_count(publish: bool) -> int:
        nc = await nats.connect(embedded_url(nats_port, workdir / "var" / EMBEDDED_DIR))
        js = nc.jetstream()
        if publish:
            await js.publish("sms.inbound.test", b"{}", headers={"Nats-Msg-Id": "keep-1"})
        # Only the inbound subject: the delivery consumers dead-letter this empty event.
        info = await js.stream_info("SMS", subjects_filter="sms.inbound.>")
        count = sum((info.state.subjects or {}).values())
        await nc.close()
        return count

    proc = Proc(workdir, free_port(), nats_port, {})
    proc.wait_ready()
    assert asyncio.run(publish_and_count(True)) == 1
    assert proc.stop() == 0
    proc = Proc(workdir, free_port(), nats_port, {})
    proc.wait_ready()
    try:
        assert asyncio.run(publish_and_count(False)) == 1
    finally:
        assert proc.stop() == 0


def test_sighup_and_pbxsms_reload_reread_settings(workdir: Path) -> None:
    proc = Proc(workdir, free_port(), free_port(), {})
    proc.wait_ready()
    try:
        env = {**os.environ, "PBXSMS_ENV_FILE": str(workdir / ".env")}
        write_env(workdir / ".env", PBXSMS_DATA_DIR=str(workdir / "var"),
                  PBXSMS_SMTP_PORT="not-a-port")
        result = subprocess.run([*PBXSMS, "reload"], cwd=workdir, env=env,
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        _wait_for_log(proc, "reload rejected")
        assert "PBXSMS_SMTP_PORT" in proc.log.read_text()
        assert proc.get("/readyz")[0] == 200, "bad settings leave the old ones running"

        write_env(workdir / ".env", PBXSMS_DATA_DIR=str(workdir / "var"),
                  PBXSMS_SMTP_HOST="mail.example.com")
        proc.popen.send_signal(signal.SIGHUP)
        _wait_for_log(proc, "settings reloaded")
    finally:
        assert proc.stop() == 0


def _wait_for_log(proc: Proc, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in proc.log.read_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not logged:\n{proc.log.read_text()}")
        time.sleep(0.05)


def test_a_second_serve_on_the_same_data_folder_stops_and_touches_nothing(
        workdir: Path) -> None:
    first = Proc(workdir, free_port(), free_port(), {})
    try:
        first.wait_ready()
        pid_path = workdir / "var" / "pbxsms.pid"
        assert pid_path.read_text().strip() == str(first.popen.pid)
        env = {**os.environ, "PBXSMS_ENV_FILE": str(workdir / ".env"),
               "PBXSMS_HTTP_PORT": str(free_port()),
               "PBXSMS_EMBEDDED_NATS_PORT": str(free_port())}  # the advice once given
        started = time.monotonic()
        second = subprocess.run([*PBXSMS, "serve"], cwd=workdir, env=env,
                                capture_output=True, text=True, timeout=30)
        took = time.monotonic() - started
        assert second.returncode != 0
        assert f"already running (pid {first.popen.pid}); use pbxsms reload" in second.stderr
        assert took < 2.0, f"took {took:.2f}s"
        # Nothing was started or removed: no second nats-server, the pid file intact.
        assert pid_path.read_text().strip() == str(first.popen.pid)
        assert len(nats_server_children(first.popen.pid)) == 1
        assert "Traceback" not in second.stderr + second.stdout
        result = subprocess.run([*PBXSMS, "reload"], cwd=workdir, env=env,
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        _wait_for_log(first, "settings reloaded")
    finally:
        assert first.stop() == 0


def test_the_first_serve_creates_the_config_file_from_the_example(workdir: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "pbxsms.example.toml"
    (workdir / "config").mkdir()
    (workdir / "config" / "pbxsms.example.toml").write_text(example.read_text())
    proc = Proc(workdir, free_port(), free_port(), {})
    try:
        proc.wait_ready()
    finally:
        assert proc.stop() == 0
    created = workdir / "config" / "pbxsms.toml"
    assert created.read_text() == example.read_text()
    assert "created config/pbxsms.toml from config/pbxsms.example.toml" in proc.log.read_text()
