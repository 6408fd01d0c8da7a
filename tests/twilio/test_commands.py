"""`pbxsms twilio simulator` and a real `pbxsms serve`, as an operator runs them: a text
pushed by the simulator is stored, a send leaves through it, its status callback marks it
delivered."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiohttp import ClientError, ClientSession

from tests.helpers import free_port, wait_until
from tests.procs import Proc
from tests.twilio.support import ACCOUNT_SID, AUTH_TOKEN, CUSTOMER, OUR_NUMBER, numbers_toml

PBXSMS = [sys.executable, "-c", "from pbxsms.core.cli import main; main()"]


async def test_the_simulator_command_and_a_real_gateway(tmp_path: Path) -> None:
    sim_port = free_port()
    sim_log = tmp_path / "simulator.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
           "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "PBXSMS_ENV_FILE": os.devnull}
    with sim_log.open("wb") as out:
        simulator = subprocess.Popen([*PBXSMS, "twilio", "simulator", "--port", str(sim_port)],
                                     stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
    sim = f"http://127.0.0.1:{sim_port}"
    http_port = free_port()
    public = f"http://127.0.0.1:{http_port}"  # no proxy: the gateway is its public URL
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "pbxsms.toml").write_text(
        numbers_toml().replace('enabled = ["twilio", "email", "mobileapp"]',
                               'enabled = ["twilio"]'))
    (tmp_path / ".env").write_text(
        f"TWILIO_ACCOUNT_SID={ACCOUNT_SID}\nTWILIO_AUTH_TOKEN={AUTH_TOKEN}\n"
        f"TWILIO_BASE_URL={sim}\nPBXSMS_PUBLIC_URL={public}\nPBXSMS_API_TOKEN=api-token\n"
        f"PBXSMS_DATA_DIR={tmp_path / 'var'}\n")
    gateway = Proc(tmp_path, http_port, free_port(), {})
    try:
        await asyncio.to_thread(gateway.wait_ready)
        async with ClientSession() as http:
            async def call(method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
                async with http.request(method, url, **kwargs) as response:
                    return response.status, await response.json(content_type=None)

            async def listening() -> bool:
                try:
                    return (await call("GET", f"{sim}/_sim/messages"))[0] == 200
                except ClientError:
                    return False

            await wait_until(listening, 15, "the simulator listening")
            status, pushed = await call("POST", f"{sim}/_sim/inbound", json={
                "url": f"{public}/webhook/twilio/sms", "from": CUSTOMER, "to": OUR_NUMBER,
                "body": "Open on Sunday?"})
            assert (status, pushed["status"]) == (200, 200), pushed

            api = {"Authorization": "Bearer api-token"}
            status, sent = await call("POST", f"{public}/api/v1/messages", headers=api, json={
                "from": OUR_NUMBER, "to": CUSTOMER, "body": "Yes, 10 to 4"})
            assert status == 202
            ours = sent["id"]

            async def in_state(state: str) -> bool:
                answer = await call("GET", f"{public}/api/v1/messages/{ours}", headers=api)
                return answer[0] == 200 and answer[1]["state"] == state

            await wait_until(lambda: in_state("accepted"), 15, "the send accepted")
            _, listed = await call("GET", f"{sim}/_sim/messages")
            (message,) = [m for m in listed["messages"] if m["direction"] == "outbound-api"]
            assert (message["from"], message["to"], message["body"]) == (
                OUR_NUMBER, CUSTOMER, "Yes, 10 to 4")
            status, callback = await call("POST", f"{sim}/_sim/status",
                                          json={"sid": message["sid"], "status": "delivered"})
            assert (status, callback["status"]) == (200, 204), callback
            await wait_until(lambda: in_state("delivered"), 15, "the message delivered")
    finally:
        simulator.send_signal(signal.SIGINT)
        code = simulator.wait(10)
        gateway.stop()
    output = sim_log.read_text()
    assert code == 0, output
    assert f"Twilio simulator on {sim}" in output and "Traceback" not in output
    assert AUTH_TOKEN not in output + gateway.log.read_text()
    served = gateway.log.read_text()
    assert "inbound twilio message accepted" in served
    # Bodies are personal data: never logged at INFO.
    assert "Open on Sunday?" not in served and "Yes, 10 to 4" not in served


def test_without_a_token_the_simulator_says_what_to_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWILIO_")}
    result = subprocess.run([*PBXSMS, "twilio", "simulator", "--port", "0"], cwd=tmp_path,
                            env={**env, "PBXSMS_ENV_FILE": os.devnull}, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2
    assert "TWILIO_AUTH_TOKEN" in result.stderr
