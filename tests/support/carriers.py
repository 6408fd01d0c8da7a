"""Helpers of the carrier tests: send through the API, wait for a message's state, count
what the stream holds, the path every carrier shares from a text to the app's reply, and
the operator's commands (the CLI, `pbxsms doctor`'s fixes, a simulator command)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aiohttp import ClientSession
from click.testing import CliRunner, Result

from pbxsms.core.cli import build_cli
from pbxsms.core.model.events import State
from pbxsms.core.stores.status import StatusRecord
from pbxsms.sim.mobileapp import MobileAppSimulator, Push
from pbxsms.sim.server import GatewayAnswer
from tests.helpers import wait_until, write_env
from tests.support.delivery import HOOK_TOKEN, ORG, SENDER, wait_channel
from tests.support.gateway import Gateway
from tests.support.smtp import SmtpServer

API_TOKEN = "api-t0ken"
# Fast retries, so fault scenarios settle in about a second.
BUS = """
[bus]
backoff_initial = "50ms"
backoff_max = "500ms"
max_deliver = 4
"""


def numbers_toml(*numbers: tuple[str, str, str]) -> str:
    """`[[numbers]]` of (number, provider, extension), each on the app's organisation."""
    return "".join(f'\n[[numbers]]\nnumber = "{number}"\nprovider = "{provider}"\n'
                   f'extension = "{extension}"\nmobileapp_org = "{ORG}"\n'
                   for number, provider, extension in numbers)


async def reaches_app_and_email(gateway: Gateway, app: MobileAppSimulator, smtp: SmtpServer,
                                customer: str, ours: str, text: str,
                                email: str = "front@example.com") -> Push:
    """After a carrier pushed `text` from `customer` to `ours`: it reached extension 201's
    app, and `email` by email (delivered); the app's push."""
    await wait_until(lambda: len(app.pushes) == 1, message="the app push")
    (push,) = app.pushes
    assert (push.orgid, push.from_, push.to, push.content) == (ORG, customer, "201", text)
    await wait_until(lambda: len(smtp.mailbox.mails) == 1, message="the email copy")
    (mail,) = smtp.mailbox.mails
    assert mail.rcpt_tos == [email] and mail.mail_from == SENDER
    assert mail.message["Subject"] == f"SMS from {customer} to {ours}"
    body = mail.message.get_body(("plain",))
    assert body is not None and text in body.get_content()
    inbound_id = await gateway.runtime.status.find_by_provider_id("mobileapp", push.messageid)
    assert inbound_id is not None
    await wait_channel(gateway.runtime, inbound_id, "email", State.DELIVERED)
    return push


async def text_both_then_reply(gateway: Gateway, app: MobileAppSimulator,
                               pushes: Sequence[Awaitable[GatewayAnswer]],
                               replies: Sequence[tuple[str, str, str]]) -> None:
    """Two numbers texted at once (the carriers' `pushes`), then both extensions reply at
    once: `replies` of (extension, customer, text)."""
    pushed = await asyncio.gather(*pushes)
    assert [p.status for p in pushed] == [200] * len(pushes)
    await wait_until(lambda: len(app.pushes) == len(pushes), message="every app push")
    hook = f"{gateway.url}/webhook/ringotel"
    answers = await asyncio.gather(*(
        app.reply(hook, HOOK_TOKEN, extension, customer, text, ORG, messageid=f"rt-{n}")
        for n, (extension, customer, text) in enumerate(replies, 1)))
    assert [a.status for a in answers] == [200] * len(replies)


async def send(gateway: Gateway, sender: str, to: str, body: str = "hello") -> str:
    """Send through the API (PBXSMS_API_TOKEN = API_TOKEN); the message id."""
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with ClientSession(headers=headers) as http, http.post(
            f"{gateway.url}/api/v1/messages",
            json={"from": sender, "to": to, "body": body}) as response:
        answer: dict[str, Any] = await response.json()
        assert response.status == 202, answer
    return str(answer["id"])


async def settled(gateway: Gateway, message_id: str, state: str, timeout: float = 10.0
                  ) -> StatusRecord:
    """Wait until the message's record is in `state`; the record."""
    record: StatusRecord | None = None

    async def reached() -> bool:
        nonlocal record
        record = await gateway.runtime.status.get(message_id)
        return record is not None and record.state.value == state

    try:
        await wait_until(reached, timeout, f"{message_id} to be {state}")
    except AssertionError:
        raise AssertionError(f"{message_id} not {state}: {record}") from None
    assert record is not None
    return record


async def stored_on(gateway: Gateway, subject: str) -> int:
    """How many events the stream holds on `subject` (wildcards allowed)."""
    runtime = gateway.runtime
    info = await runtime.js.stream_info(runtime.stream, subjects_filter=subject)
    return sum((info.state.subjects or {}).values())


async def last_status(gateway: Gateway, message_id: str) -> dict[str, Any]:
    """The latest `sms.status.<id>` event as JSON."""
    msg = await gateway.runtime.js.get_last_msg(gateway.runtime.stream,
                                                f"sms.status.{message_id}")
    assert msg.data is not None
    data: dict[str, Any] = json.loads(msg.data)
    return data


async def run_cli(*args: str) -> Result:
    """Run the CLI in a thread: it runs its own event loop, ours keeps serving."""
    return await asyncio.to_thread(CliRunner().invoke, build_cli(), list(args))


def plugin_files(tmp_path: Path, plugin: str, **env: str) -> list[str]:
    """`--env-file` and `--config` of a gateway with only `plugin` enabled."""
    config = tmp_path / "pbxsms.toml"
    config.write_text(f'[plugins]\nenabled = ["{plugin}"]\n')
    env_file = write_env(tmp_path / f"{plugin}.env", PBXSMS_DATA_DIR=str(tmp_path / "var"),
                         **env)
    return ["--env-file", str(env_file), "--config", str(config)]


def assert_fixes(lines: list[str], expected: Mapping[str, str]) -> None:
    """Each `pbxsms doctor` line starting so is followed by its fix, which says this."""
    for start, fix in expected.items():
        at = next(n for n, line in enumerate(lines) if line.startswith(start))
        assert lines[at + 1].startswith("      fix: ") and fix in lines[at + 1], lines


async def simulator_banner(carrier: str) -> tuple[bytes, bytes]:
    """The first two lines `pbxsms <carrier> simulator --port 0` prints, then stop it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from pbxsms.core.cli import main; main()", carrier,
        "simulator", "--port", "0", stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        first = await asyncio.wait_for(process.stdout.readline(), 20)
        second = await asyncio.wait_for(process.stdout.readline(), 20)
    finally:
        process.terminate()
        await process.wait()
    return first, second
