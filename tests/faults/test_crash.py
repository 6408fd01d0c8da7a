"""Crash: `kill -9` the gateway in the middle of a burst of inbound webhooks, restart it.

Every webhook answered 200 reaches the app and email; every one that was not is retried,
as ClickSend retries (and Twilio with a retrying connection override, its requests signed
by the Twilio simulator), and then reaches them. A second copy is allowed only for a delivery
in flight at the instant of the kill, so duplicates per channel are bounded by the
consumer's in-flight limit. Two ways to die:

- `main`: the gateway process alone, with an external nats-server that survives it
  (an embedded server cannot survive its parent: it is told to stop when pbxsms dies);
- `embedded`: the gateway and its embedded nats-server, both by SIGKILL.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.sim.mobileapp import MobileAppSimulator
from pbxsms.sim.twilio import TwilioSimulator
from tests.faults.support import (
    CARRIERS,
    FULL,
    MAX_IN_FLIGHT,
    ClickSendPoster,
    GatewayProc,
    Sinks,
    Webhook,
    add_result,
    bodies,
    fault_env,
    gateway_toml,
    measure,
    poster_for,
)
from tests.helpers import free_port, wait_until
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.faults

BURST = 2000 if FULL else 300


async def crash_scenario(tmp_path: Path, app: MobileAppSimulator, smtp: SmtpServer,
                         with_nats: bool, carrier: str, twilio: TwilioSimulator) -> None:
    external: EmbeddedNats | None = None
    if not with_nats:
        external = EmbeddedNats(free_port(), tmp_path / "nats")
        await external.start()
    gateway = GatewayProc(tmp_path / "gw", gateway_toml(carrier=carrier),
                          fault_env(app, smtp), nats_url=external.url if external else None)
    try:
        await asyncio.to_thread(gateway.start)
        sent = bodies("crash", BURST)
        hooks = [Webhook(body) for body in sent]
        poster = poster_for(carrier, gateway.url, twilio)
        burst = asyncio.create_task(poster.deliver(hooks, deadline=600))
        # Mid-flight: a third of the burst stored, deliveries running.
        await wait_until(lambda: poster.accepted >= BURST // 3 and len(app.pushes) > 0,
                         60, "a third of the burst accepted")
        await asyncio.to_thread(gateway.kill, with_nats)
        answered_before = sum(1 for hook in hooks if hook.accepted)
        await asyncio.to_thread(gateway.start)
        await burst
        sinks = Sinks(app, smtp)
        await wait_until(lambda: sinks.all_delivered(sent), 600 if FULL else 120,
                         "every message at the app and by email")
        via = "" if carrier == "clicksend" else f", inbound through {carrier.title()} webhooks"
        result = add_result(measure(
            f"crash-{'embedded' if with_nats else 'main'}{_suffix(carrier)}",
            ("kill -9 of the gateway and its embedded nats-server mid-burst, restart"
             if with_nats else
             "kill -9 of the gateway (external nats-server) mid-burst, restart") + via,
            sinks, sent, bound=2 * MAX_IN_FLIGHT,
            notes=f"({answered_before} answered 200 before the kill{_retried(hooks)})."))
        assert result.lost == 0
        # Per channel at most the in-flight limit: both channels together twice that.
        app_dups = sum(n - 1 for n in sinks.app_counts().values() if n > 1)
        mail_dups = sum(n - 1 for n in sinks.mail_counts().values() if n > 1)
        assert app_dups <= MAX_IN_FLIGHT and mail_dups <= MAX_IN_FLIGHT, (app_dups, mail_dups)
        gateway.assert_log_clean(sent)
    finally:
        await asyncio.to_thread(gateway.stop)
        if external is not None:
            await external.stop()


def _suffix(carrier: str) -> str:
    """The scenario's name suffix: none for ClickSend's, the first inbound carrier."""
    return "" if carrier == "clicksend" else f"-{carrier}"


def _retried(hooks: list[Webhook]) -> str:
    """A replay refusal (409) after an unanswered attempt: stored before the kill."""
    replayed = sum(1 for hook in hooks if hook.answers[-1] == 409)
    return f"; {replayed} retried after it answered 409, already stored" if replayed else ""


@pytest.mark.parametrize("carrier", CARRIERS)
async def test_kill_9_of_the_gateway_loses_nothing(
    tmp_path: Path, app: MobileAppSimulator, smtp: SmtpServer, twilio: TwilioSimulator,
    carrier: str,
) -> None:
    await crash_scenario(tmp_path, app, smtp, False, carrier, twilio)


@pytest.mark.parametrize("carrier", CARRIERS)
async def test_kill_9_of_the_gateway_and_its_nats_server_loses_nothing(
    tmp_path: Path, app: MobileAppSimulator, smtp: SmtpServer, twilio: TwilioSimulator,
    carrier: str,
) -> None:
    await crash_scenario(tmp_path, app, smtp, True, carrier, twilio)


async def test_without_a_crash_nothing_is_delivered_twice(
    tmp_path: Path, app: MobileAppSimulator, smtp: SmtpServer
) -> None:
    gateway = GatewayProc(tmp_path / "gw", gateway_toml(), fault_env(app, smtp))
    try:
        await asyncio.to_thread(gateway.start)
        sent = bodies("steady", BURST)
        hooks = [Webhook(body) for body in sent]
        await ClickSendPoster(gateway.url).deliver(hooks)
        # ClickSend's own retries of answered webhooks (a lost 200) change nothing.
        await ClickSendPoster(gateway.url).deliver([Webhook(h.body, h.message_id)
                                                    for h in hooks[:50]])
        sinks = Sinks(app, smtp)
        await wait_until(lambda: sinks.all_delivered(sent), 120, "every message delivered")
        result = add_result(measure("steady", "burst without faults, 50 webhooks posted twice",
                                sinks, sent))
        assert (result.lost, result.duplicated) == (0, 0)
        assert all(hook.answers == [200] for hook in hooks)
        gateway.assert_log_clean(sent)
    finally:
        await asyncio.to_thread(gateway.stop)
