"""Who owns a number's settings: `[[numbers]]` rows are the file's (API edits refused,
naming the file; a removed row removes the number on reload); numbers made through the
API are never touched by the file."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientSession

from tests.support.gateway import StartGateway

FILED, MADE, ADDED = "+61411111111", "+61422222222", "+61433333333"


def rows(*numbers: str, extension: str = "101") -> str:
    return "".join(f'[[numbers]]\nnumber = "{n}"\nprovider = "clicksend"\n'
                   f'extension = "{extension}"\n\n' for n in numbers)


async def call(http: ClientSession, method: str, url: str, **kw: Any) -> tuple[int, Any]:
    async with http.request(method, url, **kw) as response:
        return response.status, (await response.json() if response.status != 204 else None)


async def test_the_file_owns_its_rows_and_the_api_its_own(start: StartGateway,
                                                         http: ClientSession) -> None:
    gateway = await start(toml=rows(FILED))
    api = f"{gateway.url}/api/v1/numbers"
    toml = gateway.runtime.config.core.config
    status, record = await call(http, "GET", f"{api}/{FILED}")
    assert status == 200 and record["managed_by_file"] == str(toml)

    # The file's number cannot be changed or removed through the API (nor the CLI, its
    # client): the answer names the file.
    change = {"provider": "clicksend", "extension": "999"}
    for method, url, body in (("PUT", f"{api}/{FILED}", change),
                              ("PUT", api, {"numbers": [{"number": FILED, **change}]}),
                              ("DELETE", f"{api}/{FILED}", None)):
        status, refused = await call(http, method, url, json=body)
        assert status == 409, refused
        assert str(toml) in refused["error"] and "pbxsms reload" in refused["error"]
    status, refused = await call(http, "PUT", f"{api}/{MADE}",
                                 json={**change, "managed_by_file": "x.toml"})
    assert (status, refused["field"]) == (422, "managed_by_file")

    # A number made through the API is the API's.
    status, _ = await call(http, "PUT", f"{api}/{MADE}", json=change)
    assert status == 201

    # The file drops FILED, adds ADDED, and has a different row for MADE: on reload
    # FILED is gone, ADDED is the file's, MADE is left as the API made it.
    toml.write_text(rows(ADDED) + rows(MADE, extension="555"))
    await gateway.server.reload()
    status, _ = await call(http, "GET", f"{api}/{FILED}")
    assert status == 404
    status, added = await call(http, "GET", f"{api}/{ADDED}")
    assert status == 200 and added["managed_by_file"] == str(toml)
    status, made = await call(http, "GET", f"{api}/{MADE}")
    assert (made["extension"], made["managed_by_file"]) == ("999", None)
    # And the API can still change it.
    status, _ = await call(http, "PUT", f"{api}/{MADE}", json={**change, "extension": "998"})
    assert status == 200
