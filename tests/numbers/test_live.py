"""Message settings change live: every instance sharing NATS follows the KV bucket."""

from __future__ import annotations

from pathlib import Path

import nats
import pytest
from aiohttp import ClientSession

from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.core.config.problems import ConfigError
from pbxsms.core.inbound.routing import publish_inbound
from pbxsms.core.model.events import InboundMessage, Route
from pbxsms.core.model.numbers import NumberSettings
from pbxsms.core.stores.numbers import NUMBERS_BUCKET, NoRoute, NumberStore
from tests.helpers import make_config, wait_until
from tests.numbers.gateways import ENV, gateway_plugins
from tests.support.gateway import StartGateway

NUMBER = "+61411111111"
PATH = "/api/v1/numbers/0411%20111%20111"  # national format, region AU

FILE = """
[[numbers]]
number = "0411 111 111"
provider = "clicksend"
extension = 101
domain = "pbx.example.com"
email = "desk@example.com"

[[numbers]]
number = "+61 422 222 222"
provider = "clicksend"
extension = "102"
"""


def extension_on(numbers: NumberStore, number: str = NUMBER) -> str | None:
    route = numbers.route_inbound(number, "clicksend")
    return route.extension if isinstance(route, Route) else None


async def test_a_change_through_the_api_is_used_by_the_next_lookup_on_another_instance(
        start: StartGateway, http: ClientSession) -> None:
    first = await start()
    second = await start()
    assert isinstance(second.runtime.numbers.route_inbound(NUMBER, "clicksend"), NoRoute)

    body = {"provider": "clicksend", "extension": "101", "domain": "pbx.example.com"}
    async with http.put(first.url + PATH, json=body) as response:
        assert response.status == 201
        assert (await response.json())["number"] == NUMBER
    assert extension_on(first.runtime.numbers) == "101"  # the writer reads its own write
    await wait_until(lambda: extension_on(second.runtime.numbers) == "101", timeout=2,
                     message="the new number on the second instance")

    # Changed on the second instance; the next inbound webhook on the first uses it.
    async with http.put(second.url + PATH, json={**body, "extension": "102"}) as response:
        assert response.status == 200
    await wait_until(lambda: extension_on(first.runtime.numbers) == "102", timeout=2,
                     message="the change on the first instance")
    message = InboundMessage(provider="clicksend", provider_message_id="CS-LIVE-1",
                             from_="+61499000001", to=NUMBER, body="hello")
    await publish_inbound(first.runtime, message, "clicksend:CS-LIVE-1")
    stored = await first.runtime.js.get_last_msg("SMS", "sms.inbound.clicksend")
    routed = InboundMessage.model_validate_json(stored.data or b"")
    assert routed.route is not None and routed.route.extension == "102"

    async with http.put(first.url + PATH, json={**body, "enabled": False}) as response:
        assert response.status == 200
    await wait_until(lambda: extension_on(second.runtime.numbers) is None, timeout=2,
                     message="the disabled number on the second instance")
    assert second.runtime.numbers.route_inbound(NUMBER, "clicksend") == NoRoute(
        "disabled", f"{NUMBER} is disabled in its message settings")

    async with http.delete(second.url + PATH) as response:
        assert response.status == 204
    await wait_until(lambda: first.runtime.numbers.get(NUMBER) is None, timeout=2,
                     message="the removal on the first instance")


async def test_config_file_numbers_are_upserted_at_start_and_on_reload(
        start: StartGateway, http: ClientSession) -> None:
    gateway = await start(toml=FILE)
    numbers = gateway.runtime.numbers
    record = numbers.get(NUMBER)
    assert record is not None
    assert (record.extension, record.domain, record.email) == (
        "101", "pbx.example.com", ["desk@example.com"])
    assert numbers.get("+61422222222") is not None

    # A number managed only through the API is left alone by the file.
    async with http.put(f"{gateway.url}/api/v1/numbers/%2B61433333333",
                        json={"provider": "othersms"}) as response:
        assert response.status == 201
    config_file = gateway.runtime.config.core.config
    config_file.write_text(FILE.replace("extension = 101", "extension = 103"))
    await gateway.server.reload()
    assert extension_on(numbers) == "103"
    assert numbers.get("+61433333333") is not None

    # A reload bringing a bad table is rejected whole: the stored settings stay.
    config_file.write_text(FILE.replace('"desk@example.com"', '"desk@"'))
    await gateway.server.reload()
    assert extension_on(numbers) == "103"


def test_a_bad_numbers_table_is_a_configuration_problem(tmp_path: Path) -> None:
    bad = FILE.replace('extension = "102"', 'extension = "102"\nemail = ["x@y.example", "nope"]')
    with pytest.raises(ConfigError) as caught:
        make_config(tmp_path, bad, ENV, gateway_plugins())
    assert [p.setting for p in caught.value.problems] == ["toml.numbers[1].email"]
    assert "'nope'" in caught.value.problems[0].message

    with pytest.raises(ConfigError) as caught:
        make_config(tmp_path, FILE.replace('provider = "clicksend"', 'provider = "smsco"', 1),
                    ENV, gateway_plugins())
    assert [p.setting for p in caught.value.problems] == ["toml.numbers[0].provider"]


async def test_a_plugin_that_sends_nothing_is_not_a_provider(start: StartGateway) -> None:
    with pytest.raises(RuntimeError, match=r"toml.numbers\[0\].provider: 'email' is not an "
                                           r"enabled provider plugin"):
        await start(toml=FILE.replace('provider = "clicksend"', 'provider = "email"', 1))


async def test_the_view_follows_the_bucket_across_a_nats_restart(
        start: StartGateway, nats_server: EmbeddedNats) -> None:
    gateway = await start()
    await nats_server.stop()
    await nats_server.start()
    nc = await nats.connect(nats_server.url)
    try:
        kv = await nc.jetstream().key_value(NUMBERS_BUCKET)
        record = NumberSettings.parse({"number": NUMBER, "provider": "clicksend",
                                       "extension": "104"})
        await kv.put(record.key(), record.model_dump_json().encode())
        await wait_until(lambda: extension_on(gateway.runtime.numbers) == "104", timeout=15,
                         message="a change made after NATS came back")
    finally:
        await nc.close()
