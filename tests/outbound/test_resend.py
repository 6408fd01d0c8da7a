"""Sending again what failed: `pbxsms messages resend` and the API, once only; the
operator reads a message's text and lists the dead letters."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import ClientSession
from click.testing import CliRunner, Result

from pbxsms.core.cli import build_cli
from pbxsms.sim.clicksend import ClickSendSimulator
from tests.helpers import wait_until, write_env
from tests.outbound.sending import (
    TOKEN,
    dead_letters,
    drained,
    recipient,
    send_via_api,
)
from tests.support.carriers import settled
from tests.support.gateway import Gateway


async def run_cli(*args: str) -> Result:
    """The CLI in a thread: it runs its own event loop while ours serves the gateway."""
    return await asyncio.to_thread(CliRunner().invoke, build_cli(), list(args))


async def api(gateway: Gateway, method: str, path: str) -> tuple[int, Any]:
    async with ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http, \
            http.request(method, f"{gateway.url}{path}") as response:
        return response.status, await response.json()


def sent_to(sim: ClickSendSimulator, number: str) -> list[dict[str, Any]]:
    return [m for m in sim.sent_messages if m.get("to") == number]


async def test_a_dead_lettered_send_is_resent_once(
        tmp_path: Path, sim: ClickSendSimulator, start_sending_gateway: Any) -> None:
    gateway = await start_sending_gateway()
    to = recipient(7)
    sim.force_status(to, "INVALID_RECIPIENT")
    failed_id = await send_via_api(gateway, "see you at 10", to=to)
    await settled(gateway, failed_id, "failed")
    assert [letter.id for letter in await dead_letters(gateway, 1)] == [failed_id]
    sim.force_status(to, None)

    env = write_env(tmp_path / "cli.env", PBXSMS_API_TOKEN=TOKEN)
    where = ["--env-file", str(env), "--url", gateway.url]
    listed = await run_cli("messages", "list", "--status", "dead", *where)
    assert listed.exit_code == 0, listed.output
    assert failed_id in listed.output and "outbound" in listed.output

    first = await run_cli("messages", "resend", failed_id, *where)
    assert first.exit_code == 0, first.output
    again = await run_cli("messages", "resend", failed_id, *where)
    assert again.exit_code == 0, again.output
    new_id = first.output.split("resent as ")[1].split()[0]
    assert f"resent as {new_id}" in again.output, "the second resend is the first one"
    record = await settled(gateway, new_id, "accepted")
    assert record.state.value == "accepted"

    # The same through the API: still the first resend, nothing sent again.
    status, answer = await api(gateway, "POST", f"/api/v1/messages/{failed_id}/resend")
    assert (status, answer["id"], answer["duplicate"]) == (202, new_id, True), answer
    await wait_until(lambda: drained(gateway, "outbound"), 10.0, "the outbound consumer")
    accepted = sent_to(sim, to)
    assert len(accepted) == 1, accepted
    assert accepted[0]["body"] == "see you at 10"
    assert accepted[0]["custom_string"] == new_id

    # The operator reads what the failed message said, and that the resend follows it.
    status, shown = await api(gateway, "GET", f"/api/v1/messages/{new_id}")
    assert status == 200
    assert shown["message"]["body"] == "see you at 10"
    assert shown["message"]["resend_of"] == failed_id
    status, shown = await api(gateway, "GET", f"/api/v1/messages/{failed_id}")
    assert shown["message"]["body"] == "see you at 10" and shown["state"] == "failed"


async def test_a_failed_resend_and_its_original_resent_together_are_one_send(
        sim: ClickSendSimulator, start_sending_gateway: Any) -> None:
    """The next resend of a text whose first resend failed too is one send, whether the
    operator asks it of the original, of the failed resend, or of both."""
    gateway = await start_sending_gateway()
    to = recipient(8)
    sim.force_status(to, "INVALID_RECIPIENT")
    original = await send_via_api(gateway, "call me back", to=to)
    await settled(gateway, original, "failed")
    status, first = await api(gateway, "POST", f"/api/v1/messages/{original}/resend")
    assert status == 202, first
    await settled(gateway, first["id"], "failed")
    sim.force_status(to, None)

    status, second = await api(gateway, "POST", f"/api/v1/messages/{first['id']}/resend")
    assert status == 202 and not second["duplicate"], second
    assert second["resend_of"] == original
    status, again = await api(gateway, "POST", f"/api/v1/messages/{original}/resend")
    assert (status, again["id"], again["duplicate"]) == (202, second["id"], True), again
    await settled(gateway, second["id"], "accepted")
    await wait_until(lambda: drained(gateway, "outbound"), 10.0, "the outbound consumer")
    assert [m["custom_string"] for m in sent_to(sim, to)] == [second["id"]]


async def test_only_a_failed_send_is_resent(sim: ClickSendSimulator,
                                            start_sending_gateway: Any) -> None:
    gateway = await start_sending_gateway()
    message_id = await send_via_api(gateway, "fine")
    await settled(gateway, message_id, "accepted")
    status, answer = await api(gateway, "POST", f"/api/v1/messages/{message_id}/resend")
    assert status == 409
    assert "is accepted: only a failed send is resent" in answer["error"]
    status, answer = await api(gateway, "POST", "/api/v1/messages/nope/resend")
    assert status == 404
