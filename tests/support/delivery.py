"""Delivery-test parts: the app and SMTP settings, routed inbound events injected onto the
bus, and reads of statuses, dead letters and consumers."""

from __future__ import annotations

import json
import uuid
from typing import Any

from nats.js.errors import NotFoundError

from pbxsms.core.model.events import DeadLetter, InboundMessage, Route, State
from pbxsms.core.serve.runtime import Runtime
from pbxsms.core.stores.status import StatusRecord
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.helpers import wait_until
from tests.support.smtp import SmtpServer

APP_TOKEN = "ringotel-admin-token"
HOOK_TOKEN = "app-webhook-secret"
ORG = "org1"
NUMBER = "+61411111111"  # ours, the one the customer texts
CUSTOMER = "+61422222222"
SENDER = "sms@pbx.example.com"

# Fast retries, so failure paths finish in about a second.
FAST_BUS = """
[plugins]
enabled = ["email", "mobileapp"]

[bus]
backoff_initial = "{backoff_initial}"
backoff_max = "1s"
max_deliver = {max_deliver}
"""


def bus_toml(max_deliver: int = 3, backoff_initial: str = "50ms") -> str:
    return FAST_BUS.format(max_deliver=max_deliver, backoff_initial=backoff_initial)


def delivery_env(app: MobileAppSimulator, smtp: SmtpServer, **more: str) -> dict[str, str]:
    return {"RINGOTEL_API_URL": app.api_url, "RINGOTEL_API_TOKEN": APP_TOKEN,
            "RINGOTEL_WEBHOOK_TOKEN": HOOK_TOKEN, "PBXSMS_SMTP_HOST": "127.0.0.1",
            "PBXSMS_SMTP_PORT": str(smtp.port), "PBXSMS_SMTP_FROM": SENDER,
            "PBXSMS_SMTP_TIMEOUT": "5", **more}


def routed_inbound(body: str = "Hello from the customer", *, extension: str | None = "201",
            emails: tuple[str, ...] = ("desk@example.com",), org: str | None = ORG,
            customer: str = CUSTOMER, number: str = NUMBER,
            route: bool = True) -> InboundMessage:
    """An inbound message as the ClickSend webhook publishes it, with its route."""
    return InboundMessage(
        provider="clicksend", provider_message_id=str(uuid.uuid4()).upper(),
        **{"from": customer}, to=number, body=body,
        route=Route(number=number, provider="clicksend", extension=extension,
                    email=list(emails), mobileapp_org=org, domain="pbx.example.com")
        if route else None)


async def inject_inbound(runtime: Runtime, message: InboundMessage,
                          msg_id: str | None = None) -> None:
    """Put a ready-made inbound event on the bus as the ClickSend webhook would, with its
    msg id (`clicksend:<provider id>`), skipping acceptance and routing (the real path is
    `core.inbound.routing.publish_inbound`); a replay passes its own `msg_id` to get past
    JetStream's duplicate window."""
    await runtime.publish("sms.inbound.clicksend", message,
                          msg_id or f"clicksend:{message.provider_message_id}")


async def status_record(runtime: Runtime, message_id: str) -> StatusRecord | None:
    return await runtime.status.get(message_id)


async def wait_channel(runtime: Runtime, message_id: str, channel: str, state: State,
                       timeout: float = 10.0) -> StatusRecord:
    """Wait until `channel` of the message is in `state`; return the record."""
    found: list[StatusRecord] = []

    async def reached() -> bool:
        current = await status_record(runtime, message_id)
        status = current.channels.get(channel) if current else None
        if status is not None and status.state == state:
            found.append(current)  # type: ignore[arg-type]
            return True
        return False

    await wait_until(reached, timeout, f"{channel} {state.value} for {message_id}")
    return found[-1]


async def dead_letter(runtime: Runtime, consumer: str, timeout: float = 10.0) -> DeadLetter:
    """The latest dead letter of `consumer`, waiting for it."""
    letters: list[DeadLetter] = []

    async def stored() -> bool:
        try:
            msg = await runtime.js.get_last_msg(runtime.stream, f"sms.dead.{consumer}")
        except NotFoundError:
            return False
        assert msg.data is not None
        letters.append(DeadLetter.model_validate_json(msg.data))
        return True

    await wait_until(stored, timeout, f"a dead letter of {consumer}")
    return letters[-1]


async def consumers_idle(runtime: Runtime, *names: str, timeout: float = 10.0) -> None:
    """Wait until each named consumer has handled (acked) everything published so far."""

    async def idle() -> bool:
        for name in names:
            info = await runtime.js.consumer_info(runtime.stream, name)
            if info.num_pending or info.num_ack_pending:
                return False
        return True

    await wait_until(idle, timeout, f"{', '.join(names)} idle")


async def count_on(runtime: Runtime, subject: str) -> int:
    """How many events the stream holds on `subject` (wildcards allowed)."""
    info = await runtime.js.stream_info(runtime.stream, subjects_filter=subject)
    return sum((info.state.subjects or {}).values())


async def last_on(runtime: Runtime, subject: str) -> dict[str, Any]:
    msg = await runtime.js.get_last_msg(runtime.stream, subject)
    assert msg.data is not None
    data: dict[str, Any] = json.loads(msg.data)
    return data
