"""`deliver-mobileapp`: inbound SMS pushed into the extension's app, once, with statuses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from pbxsms.core.model.events import State
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.helpers import wait_until
from tests.support.delivery import (
    APP_TOKEN,
    CUSTOMER,
    ORG,
    bus_toml,
    consumers_idle,
    dead_letter,
    delivery_env,
    inject_inbound,
    routed_inbound,
    status_record,
    wait_channel,
)
from tests.support.gateway import Gateway
from tests.support.smtp import SmtpServer

StartGateway = Callable[..., Awaitable[Gateway]]


async def test_push_reaches_the_app_once(start_gateway: StartGateway, app: MobileAppSimulator,
                                         smtp: SmtpServer) -> None:
    gateway = await start_gateway(toml=bus_toml(), env=delivery_env(app, smtp))
    message = routed_inbound("Is the shop open today?")
    await inject_inbound(gateway.runtime, message)

    status = await wait_channel(gateway.runtime, message.id, "mobileapp", State.DELIVERED)
    (push,) = app.pushes
    assert (push.orgid, push.from_, push.to, push.content, push.type) == (
        ORG, CUSTOMER, "201", "Is the shop open today?", 1)
    assert app.requests[0].headers["Authorization"] == f"Bearer {APP_TOKEN}"
    (entry,) = [h for h in status.history if h.channel == "mobileapp"]
    assert (entry.provider_message_id, entry.attempt) == (push.messageid, 1)
    assert await gateway.runtime.status.find_by_provider_id("mobileapp",
                                                            push.messageid) == message.id

    # A replay of the same event (past JetStream's duplicate window), on a restarted
    # gateway, reaches nobody again: the ledger remembers the push.
    await gateway.server.stop()
    restarted = await start_gateway(toml=bus_toml(), env=delivery_env(app, smtp))
    await inject_inbound(restarted.runtime, message, msg_id=f"replay:{message.id}")
    await consumers_idle(restarted.runtime, "deliver-mobileapp", "deliver-email")
    assert len(app.pushes) == 1 and len(app.requests) == 1
    assert len(smtp.mailbox.mails) == 1


@pytest.mark.parametrize("fault", ["500", "error", "drop"])
async def test_transient_failures_retry_with_backoff(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer, fault: str
) -> None:
    gateway = await start_gateway(toml=bus_toml(max_deliver=5), env=delivery_env(app, smtp))
    app.fail_next(fault, 2)  # type: ignore[arg-type]
    message = routed_inbound()
    await inject_inbound(gateway.runtime, message)

    status = await wait_channel(gateway.runtime, message.id, "mobileapp", State.DELIVERED)
    states = [(h.state, h.attempt) for h in status.history if h.channel == "mobileapp"]
    assert states == [(State.RETRYING, 1), (State.RETRYING, 2), (State.DELIVERED, 3)]
    reasons = [h.reason for h in status.history if h.state == State.RETRYING]
    expected = {"500": "HTTP 500", "error": "Internal error", "drop": "unreachable"}[fault]
    assert all(reason and expected in reason for reason in reasons), reasons
    assert len(app.pushes) == 1 and len(app.requests) == 3


async def test_a_timeout_retries(start_gateway: StartGateway, app: MobileAppSimulator,
                                 smtp: SmtpServer) -> None:
    gateway = await start_gateway(toml=bus_toml(max_deliver=5),
                                  env=delivery_env(app, smtp, RINGOTEL_TIMEOUT="0.3"))
    app.fail_next("delay", delay=1.0)
    message = routed_inbound()
    await inject_inbound(gateway.runtime, message)

    status = await wait_channel(gateway.runtime, message.id, "mobileapp", State.DELIVERED)
    (retry,) = [h for h in status.history if h.state == State.RETRYING]
    assert retry.reason == "app API did not answer within 0.3s"
    # The late answer was lost, so the app may hold the message twice: the one repeat
    # at-least-once delivery allows.
    await wait_until(lambda: len(app.requests) == 2, message="the second attempt")


async def test_a_permanent_error_fails_at_once_with_a_dead_letter(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer
) -> None:
    app.add_user(ORG, "201")
    gateway = await start_gateway(toml=bus_toml(max_deliver=5), env=delivery_env(app, smtp))
    message = routed_inbound(extension="999")
    await inject_inbound(gateway.runtime, message)

    status = await wait_channel(gateway.runtime, message.id, "mobileapp", State.FAILED)
    reason = status.channels["mobileapp"].reason
    assert reason is not None and "User not found: 999" in reason
    letter = await dead_letter(gateway.runtime, "deliver-mobileapp")
    assert letter.id == message.id and "User not found: 999" in letter.reason
    assert letter.attempts == 1 and len(app.requests) == 1


async def test_without_extension_it_is_skipped_and_unroutable_is_left_alone(
    start_gateway: StartGateway, app: MobileAppSimulator, smtp: SmtpServer
) -> None:
    gateway = await start_gateway(toml=bus_toml(), env=delivery_env(app, smtp))
    no_extension, no_route = routed_inbound(extension=None), routed_inbound(route=False)
    await inject_inbound(gateway.runtime, no_route)
    await inject_inbound(gateway.runtime, no_extension)
    status = await wait_channel(gateway.runtime, no_extension.id, "mobileapp", State.SKIPPED)
    assert status.channels["mobileapp"].reason == (
        f"no extension in the message settings of {no_extension.to}")
    await wait_channel(gateway.runtime, no_extension.id, "email", State.DELIVERED)
    # A message without a route is accounted for by its `unroutable` status (published by
    # the inbound path): no channel adds anything, and the consumers have moved past it.
    assert await status_record(gateway.runtime, no_route.id) is None
    assert app.requests == []


async def test_unconfigured_app_api_skips(start_gateway: StartGateway, app: MobileAppSimulator,
                                          smtp: SmtpServer) -> None:
    gateway = await start_gateway(toml=bus_toml(),
                                  env=delivery_env(app, smtp, RINGOTEL_API_URL=""))
    message = routed_inbound()
    await inject_inbound(gateway.runtime, message)
    status = await wait_channel(gateway.runtime, message.id, "mobileapp", State.SKIPPED)
    assert status.channels["mobileapp"].reason == "RINGOTEL_API_URL or RINGOTEL_API_TOKEN unset"
