"""`pbxsms clicksend subaccounts|numbers|simulator` and `pbxsms send`, against real servers."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from aiohttp import ClientSession

from pbxsms.sim.clicksend import ClickSendSimulator
from tests.helpers import basic_auth, free_port, write_env
from tests.outbound.sending import KEY, OURS, USER, recipient
from tests.support.carriers import run_cli, settled
from tests.support.gateway import StartGateway


def clicksend_env(tmp_path: Path, sim: ClickSendSimulator, key: str = KEY) -> list[str]:
    env = write_env(tmp_path / "cs.env", CLICKSEND_USERNAME=USER, CLICKSEND_API_KEY=key,
                    CLICKSEND_BASE_URL=sim.base_url, CLICKSEND_SUBACCOUNT_ID="999")
    config = tmp_path / "empty.toml"
    config.write_text("")
    return ["--env-file", str(env), "--config", str(config)]


async def test_subaccounts_prints_every_page_as_a_table(tmp_path: Path,
                                                        sim: ClickSendSimulator) -> None:
    main = sim.accounts[USER]
    for n in range(120):
        sim.add_account(f"sub{n:03d}", f"KEY-{n:03d}-SECRET", email=f"s{n}@example.com")
    result = await run_cli("clicksend", "subaccounts", *clicksend_env(tmp_path, sim))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["subaccount_id", "api_username", "email", "in", "use"]
    assert re.match(rf"{main.subaccount_id}\s+{USER}\s+{main.email}\s+CLICKSEND_USERNAME$",
                    lines[1])
    assert sum(1 for line in lines if re.match(r"\d+\s+sub\d{3}\s", line)) == 120
    assert "CLICKSEND_SUBACCOUNT_ID" in result.output
    assert "Warning: CLICKSEND_SUBACCOUNT_ID=999 is not one of them" in result.output
    assert "SECRET" not in result.output and KEY not in result.output
    pages = [r.query.get("page") for r in sim.requests if r.path == "/v3/subaccounts"]
    assert pages == ["1", "2"]


async def test_subaccounts_with_a_wrong_key_says_why_and_fails(
        tmp_path: Path, sim: ClickSendSimulator) -> None:
    result = await run_cli("clicksend", "subaccounts",
                           *clicksend_env(tmp_path, sim, key="not-the-key"))
    assert result.exit_code == 1
    assert "401" in result.output and "Authorization failed" in result.output
    assert "CLICKSEND_USERNAME and CLICKSEND_API_KEY" in result.output
    assert "not-the-key" not in result.output


async def test_subaccounts_without_credentials(tmp_path: Path) -> None:
    config = tmp_path / "empty.toml"
    config.write_text("")
    result = await run_cli("clicksend", "subaccounts", "--env-file", str(tmp_path / "none"),
                           "--config", str(config))
    assert result.exit_code == 2 and "set CLICKSEND_USERNAME" in result.output


async def test_numbers_lists_the_dedicated_numbers(tmp_path: Path,
                                                   sim: ClickSendSimulator) -> None:
    sim.add_number(OURS)
    sim.add_number("+14155550123", status=5)
    result = await run_cli("clicksend", "numbers", *clicksend_env(tmp_path, sim))
    assert result.exit_code == 0, result.output
    rows = [line.split()[:2] for line in result.output.splitlines()[1:]]
    assert rows == [[OURS, "AU"], ["+14155550123", "US"]]
    assert "Registered" in result.output


async def test_send_command_queues_and_waits_for_acceptance(
        start_sending_gateway: StartGateway, sim: ClickSendSimulator) -> None:
    gateway = await start_sending_gateway()
    env = str(gateway.runtime.config.env_file)
    result = await run_cli("send", "--env-file", env, "--url", gateway.url, "--from", OURS,
                           "--to", recipient(6), "--wait", "Your table is ready")
    assert result.exit_code == 0, result.output
    match = re.match(r"queued ([0-9a-f-]{36}) \(1 SMS part\(s\), GSM-7\)\n", result.output)
    assert match, result.output
    await settled(gateway, match.group(1), "accepted")
    assert f"accepted: {sim.sent_messages[0]['message_id']}" in result.output
    refused = await run_cli("send", "--env-file", env, "--url", gateway.url,
                            "--extension", "101", "--to", "12", "hi")
    assert refused.exit_code == 1
    assert "HTTP 422" in refused.output and "(to)" in refused.output


async def test_simulator_command_serves_and_prints_no_secret() -> None:
    port = free_port()
    script = Path(sys.executable).parent / "pbxsms"
    process = await asyncio.create_subprocess_exec(
        str(script), "clicksend", "simulator", "--port", str(port), "--username", USER,
        "--api-key", KEY, "--number", OURS, stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        first = await asyncio.wait_for(process.stdout.readline(), 30)
        second = await asyncio.wait_for(process.stdout.readline(), 5)
        url = f"http://127.0.0.1:{port}"
        assert url in first.decode() and f"CLICKSEND_BASE_URL={url}" in second.decode()
        assert KEY not in (first + second).decode()
        async with ClientSession() as http:
            async with http.get(f"{url}/v3/numbers",
                                headers={"Authorization": basic_auth(USER, KEY)}) as response:
                numbers = (await response.json())["data"]["data"]
            assert [n["dedicated_number"] for n in numbers] == [OURS]
            async with http.get(f"{url}/v3/account",
                                headers={"Authorization": basic_auth(USER, "wrong")}) as response:
                assert response.status == 401
    finally:
        process.terminate()
        code = await process.wait()
    assert code == 0, "SIGTERM stops it cleanly"
