"""`pbxsms mobileapp simulator`: the app API stand-in as an operator starts it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from aiohttp import ClientError, ClientSession
from click.testing import CliRunner

from pbxsms.core.cli import build_cli
from tests.helpers import free_port, wait_until

PBXSMS = [sys.executable, "-c", "from pbxsms.core.cli import main; main()"]


def test_the_command_is_listed() -> None:
    result = CliRunner().invoke(build_cli(), ["mobileapp", "simulator", "--help"])
    assert result.exit_code == 0
    assert "--port" in result.output and "--token" in result.output


async def test_the_simulator_serves_until_interrupted(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "simulator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*PBXSMS, "mobileapp", "simulator", "--port", str(port),
                                 "--token", "T0KEN"], stdout=out, stderr=subprocess.STDOUT,
                                cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    push = {"method": "message", "params": {"orgid": "o", "from": "+61422222222",
                                            "to": "201", "content": "hi", "type": 1}}
    try:
        async with ClientSession() as http:
            async def listening() -> bool:
                try:
                    async with http.get(f"{base}/_sim/pushes") as response:
                        return response.status == 200
                except ClientError:
                    return False

            await wait_until(listening, 15, "the simulator listening")
            async with http.post(f"{base}/", json=push,
                                 headers={"Authorization": "Bearer T0KEN"}) as response:
                assert "messageid" in (await response.json())["result"]
            async with http.post(f"{base}/", json=push,
                                 headers={"Authorization": "Bearer wrong"}) as response:
                assert response.status == 401
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(10)
    output = log.read_text()
    assert code == 0, output
    assert f"Mobile-app API simulator on {base}/" in output and "Traceback" not in output


def test_without_a_token_anywhere_it_says_what_to_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RINGOTEL_API_TOKEN"}
    result = subprocess.run([*PBXSMS, "mobileapp", "simulator", "--port", "0"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "RINGOTEL_API_TOKEN" in result.stderr


async def test_the_token_can_come_from_the_env_file(tmp_path: Path) -> None:
    """As docs/quickstart.md runs it: the token the gateway sends, read from `.env`."""
    (tmp_path / ".env").write_text("RINGOTEL_API_TOKEN=from-dotenv\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "RINGOTEL_API_TOKEN"}
    proc = subprocess.Popen([*PBXSMS, "mobileapp", "simulator", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
                            env={**env, "PBXSMS_ENV_FILE": str(tmp_path / ".env")})
    push = {"method": "message", "params": {"orgid": "o", "from": "+61422222222",
                                            "to": "201", "content": "hi", "type": 1}}
    try:
        async with ClientSession() as http:
            async def accepted() -> bool:
                try:
                    async with http.post(f"http://127.0.0.1:{port}/", json=push, headers={
                            "Authorization": "Bearer from-dotenv"}) as response:
                        return response.status == 200
                except ClientError:
                    return False

            await wait_until(accepted, 15, "the simulator taking the .env token")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
