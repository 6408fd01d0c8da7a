"""The per-number `sip` flag: off by default, set with `pbxsms numbers set --sip` and by
CSV import, as an operator would."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import ClientSession

from tests.helpers import wait_until, write_env
from tests.support.gateway import Gateway

PBXSMS = str(Path(sys.executable).parent / "pbxsms")
TOKEN = "numbers-t0ken"
TOML = '[plugins]\nenabled = ["clicksend", "freeswitch"]\n'


async def run(gateway: Gateway, tmp_path: Path, *args: str) -> tuple[int, str]:
    env_file = write_env(tmp_path / "cli.env", PBXSMS_API_TOKEN=TOKEN,
                         PBXSMS_HTTP_PORT=str(gateway.server.port))
    process = await asyncio.create_subprocess_exec(
        PBXSMS, *args, "--env-file", str(env_file),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_sip_is_off_until_set_and_kept_when_other_fields_change(
        start_gateway: Callable[..., Awaitable[Gateway]], tmp_path: Path) -> None:
    gateway = await start_gateway(toml=TOML, env={"PBXSMS_API_TOKEN": TOKEN})
    url = f"{gateway.url}/api/v1/numbers/+61411111111"
    headers = {"Authorization": f"Bearer {TOKEN}"}

    async def sip() -> bool:
        async with ClientSession(headers=headers) as http, http.get(url) as response:
            return bool((await response.json())["sip"])

    code, out = await run(gateway, tmp_path, "numbers", "set", "+61411111111",
                          "--provider", "clicksend", "--extension", "201")
    assert code == 0, out
    assert await sip() is False
    assert (await run(gateway, tmp_path, "numbers", "set", "+61411111111", "--sip"))[0] == 0
    assert await sip() is True
    assert (await run(gateway, tmp_path, "numbers", "set", "+61411111111",
                      "--description", "Front desk"))[0] == 0
    assert await sip() is True
    assert (await run(gateway, tmp_path, "numbers", "set", "+61411111111", "--no-sip"))[0] == 0
    assert await sip() is False

    csv = tmp_path / "numbers.csv"
    csv.write_text("number,provider,extension,sip\n+61411111111,clicksend,201,true\n")
    code, out = await run(gateway, tmp_path, "numbers", "import", str(csv))
    assert code == 0, out
    assert await sip() is True
    await wait_until(lambda: getattr(gateway.runtime.numbers.get("+61411111111"), "sip",
                                     False), 5, "the live record")
