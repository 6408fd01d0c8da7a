"""`pbxsms messages redeliver` and the API: an unroutable message, routed once its number
has settings, reaches the app once; again only when the operator forces it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import ClientSession

from pbxsms.core.inbound.routing import publish_inbound
from pbxsms.core.model.events import InboundMessage, State
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.helpers import wait_until
from tests.support.delivery import CUSTOMER, NUMBER, ORG, consumers_idle, wait_channel
from tests.support.gateway import Gateway

StartGateway = Callable[..., Awaitable[Gateway]]
TOKEN = "api-token"
TOML = """
[plugins]
enabled = ["clicksend", "mobileapp"]

[bus]
backoff_initial = "50ms"
backoff_max = "1s"
max_deliver = 3
"""


async def api(gateway: Gateway, method: str, path: str,
              body: object = None) -> tuple[int, Any]:
    async with ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http, \
            http.request(method, f"{gateway.url}{path}", json=body) as response:
        return response.status, await response.json(content_type=None)


async def test_an_unroutable_message_is_read_routed_and_redelivered_once(
        start_gateway: StartGateway, app: MobileAppSimulator) -> None:
    gateway = await start_gateway(toml=TOML, env={
        "PBXSMS_API_TOKEN": TOKEN, "RINGOTEL_API_URL": app.api_url,
        "RINGOTEL_API_TOKEN": "ringotel-admin-token", "RINGOTEL_ORG_ID": ORG})
    message = InboundMessage(provider="clicksend", provider_message_id="CS-REDELIVER-1",
                             **{"from": CUSTOMER}, to=NUMBER, body="call me back")
    await publish_inbound(gateway.runtime, message, "clicksend:CS-REDELIVER-1")
    await wait_until(lambda: _state(gateway, message.id, State.UNROUTABLE))

    # The operator reads it: the text, and the carrier's id as in the event.
    status, shown = await api(gateway, "GET", f"/api/v1/messages/{message.id}")
    assert status == 200
    assert shown["message"]["body"] == "call me back"
    assert shown["provider_message_id"] == "CS-REDELIVER-1"
    status, refused = await api(gateway, "POST", f"/api/v1/messages/{message.id}/redeliver")
    assert status == 409 and "still unroutable" in refused["error"]

    status, _ = await api(gateway, "PUT", f"/api/v1/numbers/{NUMBER}",
                          {"provider": "clicksend", "extension": "201"})
    assert status == 201
    status, answer = await api(gateway, "POST", f"/api/v1/messages/{message.id}/redeliver")
    assert status == 202, answer
    assert answer["route"]["extension"] == "201"
    await wait_channel(gateway.runtime, message.id, "mobileapp", State.DELIVERED)
    (push,) = app.pushes
    assert (push.to, push.content) == ("201", "call me back")
    await wait_until(lambda: _state(gateway, message.id, State.DELIVERED))

    # Again: the ledger keeps it from the person who has it.
    status, answer = await api(gateway, "POST", f"/api/v1/messages/{message.id}/redeliver")
    assert status == 202 and answer["redelivery"] == 2
    await consumers_idle(gateway.runtime, "deliver-mobileapp")
    assert len(app.pushes) == 1
    # Forced: the operator means it.
    status, answer = await api(gateway, "POST",
                               f"/api/v1/messages/{message.id}/redeliver?force=true")
    assert status == 202 and answer["forgotten"] == 1
    await wait_until(lambda: len(app.pushes) == 2, message="the forced redelivery")
    await consumers_idle(gateway.runtime, "deliver-mobileapp")
    assert len(app.pushes) == 2


async def _state(gateway: Gateway, message_id: str, state: State) -> bool:
    record = await gateway.runtime.status.get(message_id)
    return record is not None and record.state == state
