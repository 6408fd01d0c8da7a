"""The simulator's shapes checked against Telnyx's own SDK types (an oracle in tests only;
the gateway never imports the SDK): the send answer, the inbound and receipt webhooks."""

from __future__ import annotations

import json

import pytest
from aiohttp import ClientSession

from pbxsms.sim.telnyx import TelnyxSimulator
from tests.support.telnyx import API_KEY, CUSTOMER, OURS

types = pytest.importorskip("telnyx.types")


async def test_the_send_answer_is_a_message_send_response(telnyx: TelnyxSimulator) -> None:
    async with ClientSession() as http, http.post(
            f"{telnyx.base_url}/v2/messages", headers={"Authorization": f"Bearer {API_KEY}"},
            json={"from": OURS, "to": CUSTOMER, "text": "hi",
                  "messaging_profile_id": telnyx.profile_id}) as response:
        assert response.status == 200
        body = await response.json()
    answer = types.MessageSendResponse.model_validate(body)
    assert answer.data is not None and answer.data.id == telnyx.sent_messages[0]["id"]
    assert answer.data.to is not None and answer.data.to[0].status == "queued"
    assert answer.data.direction == "outbound" and answer.data.record_type == "message"


def test_the_inbound_webhook_is_an_inbound_message_event(telnyx: TelnyxSimulator) -> None:
    body = telnyx.envelope("message.received", telnyx.inbound_payload(CUSTOMER, OURS, "hi"))
    event = types.InboundMessageWebhookEvent.model_validate(json.loads(json.dumps(body)))
    assert event.data is not None and event.data.event_type == "message.received"
    assert event.data.payload is not None and event.data.payload.text == "hi"
    assert event.data.payload.direction == "inbound"


@pytest.mark.parametrize("status", ["sent", "delivered", "delivery_failed",
                                    "delivery_unconfirmed", "expired", "sending_failed"])
def test_each_receipt_is_a_delivery_update_event(telnyx: TelnyxSimulator, status: str) -> None:
    kind = "message.sent" if status == "sent" else "message.finalized"
    body = telnyx.envelope(kind, telnyx.receipt_payload("4031938e-60e4-4234-a8f7-5c1b2b1f3e1b",
                                                        status))
    event = types.DeliveryUpdateWebhookEvent.model_validate(json.loads(json.dumps(body)))
    assert event.data is not None and event.data.event_type == kind
    assert event.data.payload is not None and event.data.payload.to is not None
    assert event.data.payload.to[0].status == status


def test_an_unknown_status_is_what_the_oracle_refuses(telnyx: TelnyxSimulator) -> None:
    # The oracle is strict enough to catch a made-up value.
    body = telnyx.envelope("message.finalized", telnyx.receipt_payload("x", "made_up"))
    with pytest.raises(ValueError):
        types.DeliveryUpdateWebhookEvent.model_validate(body)
