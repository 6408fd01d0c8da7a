"""`pbxsms numbers list|set|remove|import`, run as an operator would, against a gateway."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp import ClientSession

from tests.helpers import write_env
from tests.numbers.gateways import ENV
from tests.support.gateway import Gateway, StartGateway

PBXSMS = str(Path(sys.executable).parent / "pbxsms")

CSV = """number,provider,extension,domain,email,enabled,description
0411 111 111,clicksend,101,pbx.example.com,desk@example.com;sales@example.com,true,Front desk
+61422222222,clicksend,102,pbx.example.com,sales-at-example.com,,Sales
+61 433 333 333,othersms,103,,,false,
"""


async def pbxsms(gateway: Gateway, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """Run the `pbxsms` command with a `.env` pointing at `gateway`."""
    env_file = write_env(tmp_path / "cli.env", **ENV, PBXSMS_HTTP_PORT=str(gateway.server.port))
    process = await asyncio.create_subprocess_exec(
        PBXSMS, *args, "--env-file", str(env_file),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def stored(http: ClientSession, gateway: Gateway) -> list[str]:
    async with http.get(f"{gateway.url}/api/v1/numbers") as response:
        return [record["number"] for record in (await response.json())["numbers"]]


async def test_import_of_a_file_with_one_bad_row_imports_nothing(
        start: StartGateway, http: ClientSession, tmp_path: Path) -> None:
    gateway = await start()
    bad = tmp_path / "numbers.csv"
    bad.write_text(CSV)
    code, out, err = await pbxsms(gateway, tmp_path, "numbers", "import", str(bad))
    assert code == 1
    assert err == ("pbxsms numbers: row 2 (line 3): email: 'sales-at-example.com' is not an "
                   "email address; nothing imported\n")
    assert await stored(http, gateway) == []

    duplicate = tmp_path / "numbers.toml"
    duplicate.write_text('[[numbers]]\nnumber = "0411111111"\nprovider = "clicksend"\n'
                         '[[numbers]]\nnumber = "+61411111111"\nprovider = "clicksend"\n')
    code, out, err = await pbxsms(gateway, tmp_path, "numbers", "import", str(duplicate))
    assert (code, "row 2 ([[numbers]] #2): number:" in err) == (1, True)
    assert await stored(http, gateway) == []

    bad.write_text(CSV.replace("sales-at-example.com", "sales@example.com"))
    code, out, err = await pbxsms(gateway, tmp_path, "numbers", "import", str(bad))
    assert (code, out, err) == (0, f"imported 3 numbers from {bad} (3 changed)\n", "")
    assert await stored(http, gateway) == ["+61411111111", "+61422222222", "+61433333333"]
    record = gateway.runtime.numbers.get("+61411111111")
    assert record is not None and record.email == ["desk@example.com", "sales@example.com"]


async def test_list_set_and_remove(start: StartGateway, tmp_path: Path) -> None:
    gateway = await start()
    code, out, err = await pbxsms(gateway, tmp_path, "numbers", "set", "0411 111 111",
                                  "--provider", "clicksend", "--extension", "101",
                                  "--email", "desk@example.com", "--description", "Front desk")
    assert (code, out, err) == (0, "created +61411111111\n", "")
    code, out, err = await pbxsms(gateway, tmp_path, "numbers", "set", "+61411111111",
                                  "--disabled")
    assert (code, out) == (0, "updated +61411111111\n")
    record = gateway.runtime.numbers.get("+61411111111")
    assert record is not None
    assert (record.enabled, record.extension, record.description) == (False, "101",
                                                                      "Front desk")
    code, out, err = await pbxsms(gateway, tmp_path, "numbers", "set", "+61411111111",
                                  "--email", "nope")
    assert (code, err) == (1, "pbxsms numbers: email: 'nope' is not an email address\n")

    code, out, err = await pbxsms(gateway, tmp_path, "numbers", "list")
    assert out.splitlines() == [
        "NUMBER        PROVIDER   EXTENSION  DOMAIN  ENABLED  EMAIL             DESCRIPTION",
        "+61411111111  clicksend  101        -       no       desk@example.com  Front desk"]
    assert (await pbxsms(gateway, tmp_path, "numbers", "remove", "0411111111"))[:2] == (
        0, "removed 0411111111\n")
    assert (await pbxsms(gateway, tmp_path, "numbers", "list"))[1] == "no numbers\n"
    code, out, err = await pbxsms(gateway, tmp_path, "numbers", "remove", "0411111111")
    assert (code, err) == (1, "pbxsms numbers: number: no message settings for this number\n")
