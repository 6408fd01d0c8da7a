"""Live reload with a real `pbxsms serve` subprocess: new ClickSend credentials and SMTP
settings apply to the next message, and nothing sent around the reload is lost."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import ClientError, ClientSession

from pbxsms.core.model.events import State
from pbxsms.sim.clicksend import ClickSendSimulator
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.helpers import basic_auth, free_port, wait_until, write_env
from tests.support.delivery import bus_toml, delivery_env, routed_inbound, wait_channel
from tests.support.gateway import Gateway
from tests.support.smtp import SmtpServer

PBXSMS = [sys.executable, "-c", "from pbxsms.core.cli import main; main()"]
TOKEN = "api-t0ken"
OURS = "+61481070001"
TOML = f"""
[plugins]
enabled = ["clicksend"]

[bus]
backoff_initial = "50ms"
backoff_max = "500ms"

[[numbers]]
number = "{OURS}"
provider = "clicksend"
extension = "101"
"""


class Serve:
    """`pbxsms serve` in `workdir`, its output in serve.log."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.log = workdir / "serve.log"
        self.url = f"http://127.0.0.1:{free_port()}"
        self.env = {"PBXSMS_DATA_DIR": str(workdir / "var"), "PBXSMS_API_TOKEN": TOKEN,
                    "PBXSMS_HTTP_PORT": self.url.rsplit(":", 1)[1],
                    "PBXSMS_LOG_FORMAT": "json",
                    "PBXSMS_EMBEDDED_NATS_PORT": str(free_port())}
        (workdir / "pbxsms.toml").write_text(TOML)
        self.popen: subprocess.Popen[bytes] | None = None

    def write_env(self, **values: str) -> None:
        write_env(self.workdir / ".env", **self.env, **values)

    def start(self) -> None:
        env = {**os.environ, "PBXSMS_ENV_FILE": str(self.workdir / ".env"),
               "PBXSMS_CONFIG": str(self.workdir / "pbxsms.toml")}
        self.popen = subprocess.Popen([*PBXSMS, "serve"], cwd=self.workdir, env=env,
                                      stdout=self.log.open("ab"), stderr=subprocess.STDOUT)

    def logged(self, text: str) -> bool:
        return text in self.log.read_text()

    async def ready(self, http: ClientSession) -> bool:
        assert self.popen is not None
        assert self.popen.poll() is None, self.log.read_text()
        try:
            async with http.get(f"{self.url}/readyz") as response:
                return response.status == 200
        except ClientError:
            return False

    async def send(self, http: ClientSession, body: str, to: str = "+61411111111") -> str:
        async with http.post(f"{self.url}/api/v1/messages",
                             json={"from": OURS, "to": to, "body": body},
                             headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            answer = await response.json()
            assert response.status == 202, answer
            return str(answer["id"])

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    process = Serve(tmp_path)
    yield process
    process.stop()


async def test_new_clicksend_credentials_apply_to_the_next_send_and_none_is_lost(
        serve: Serve) -> None:
    async with ClickSendSimulator() as clicksend, ClientSession() as http:
        clicksend.add_account("pbx-old", "old-key")
        clicksend.add_account("pbx-new", "new-key")
        serve.write_env(CLICKSEND_USERNAME="pbx-old", CLICKSEND_API_KEY="old-key",
                        CLICKSEND_BASE_URL=clicksend.base_url)
        serve.start()
        await wait_until(lambda: serve.ready(http), timeout=30, message="serve ready")
        await serve.send(http, "before the reload")
        await wait_until(lambda: "before the reload" in _bodies(clicksend), timeout=15,
                         message="the send before the reload")
        assert clicksend.send_requests[0].headers.get("Authorization") == basic_auth(
            "pbx-old", "old-key")

        # Messages keep coming while the account changes under them (those waiting in
        # the batch when the reload lands go with the new account).
        serve.write_env(CLICKSEND_USERNAME="pbx-new", CLICKSEND_API_KEY="new-key",
                        CLICKSEND_BASE_URL=clicksend.base_url)
        bodies = [f"around the reload {n}" for n in range(30)]
        for n, body in enumerate(bodies):
            if n == 10:
                assert serve.popen is not None
                serve.popen.send_signal(signal.SIGHUP)
            await serve.send(http, body, to=f"+614{n:08d}")
        await wait_until(lambda: serve.logged("settings reloaded"), message="the reload")
        await serve.send(http, "after the reload")
        await wait_until(lambda: "after the reload" in _bodies(clicksend), timeout=15,
                         message="the send after the reload")

        # The next send after the reload went with the new credentials.
        (last,) = [r for r in clicksend.send_requests
                   if any(m.get("body") == "after the reload" for m in r.messages)]
        assert last.headers.get("Authorization") == basic_auth("pbx-new", "new-key")
        # Every message went out once, each with one of the two accounts.
        await wait_until(lambda: set(bodies) <= set(_bodies(clicksend)), timeout=15,
                         message="every message sent")
        counts = Counter(_bodies(clicksend))
        assert all(counts[body] == 1 for body in bodies), counts
        used = {r.headers.get("Authorization") for r in clicksend.send_requests}
        assert used <= {basic_auth("pbx-old", "old-key"), basic_auth("pbx-new", "new-key")}, used

        # Then only the API key changes (rotated at ClickSend: the old one stops working).
        clicksend.add_account("pbx-new", "rotated-key")
        serve.write_env(CLICKSEND_USERNAME="pbx-new", CLICKSEND_API_KEY="rotated-key",
                        CLICKSEND_BASE_URL=clicksend.base_url)
        assert serve.popen is not None
        serve.popen.send_signal(signal.SIGHUP)
        await wait_until(lambda: serve.log.read_text().count("settings reloaded") == 2,
                         message="the second reload")
        await serve.send(http, "with the rotated key")
        await wait_until(lambda: "with the rotated key" in _bodies(clicksend), timeout=15,
                         message="the send with the rotated key")
        assert clicksend.send_requests[-1].headers.get("Authorization") == basic_auth(
            "pbx-new", "rotated-key")

    log = serve.log.read_text()
    for secret in ("old-key", "new-key", "rotated-key", TOKEN):
        assert secret not in log, f"{secret} logged"
    # PBXSMS_LOG_FORMAT=json: one JSON object per line, sends carry their message id.
    lines = [json.loads(line) for line in log.splitlines()]
    assert all({"time", "level", "component", "message"} <= set(line) for line in lines)
    assert sum("accepted by clicksend" in line["message"] and "msg_id" in line
               for line in lines) == 33


def _bodies(clicksend: ClickSendSimulator) -> list[str]:
    return [str(m.get("body")) for m in clicksend.sent_messages]


StartGateway = Callable[..., Awaitable[Gateway]]


async def test_new_smtp_settings_apply_to_the_next_email(
        start_gateway: StartGateway, app: MobileAppSimulator) -> None:
    first, second = SmtpServer(free_port()), SmtpServer(free_port())
    await first.start()
    await second.start()
    try:
        gateway = await start_gateway(toml=bus_toml(), env=delivery_env(app, first))
        one = routed_inbound("to the first server")
        await gateway.runtime.publish("sms.inbound.clicksend", one, one.id)
        await wait_channel(gateway.runtime, one.id, "email", State.DELIVERED)

        env_file = gateway.runtime.config.env_file
        assert env_file is not None
        env_file.write_text(env_file.read_text().replace(str(first.port), str(second.port)))
        await gateway.server.reload()
        two = routed_inbound("to the second server")
        await gateway.runtime.publish("sms.inbound.clicksend", two, two.id)
        await wait_channel(gateway.runtime, two.id, "email", State.DELIVERED)
        assert len(first.mailbox.mails) == 1 and len(second.mailbox.mails) == 1
    finally:
        await asyncio.gather(first.stop(), second.stop())
