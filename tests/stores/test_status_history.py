"""A message's status history is capped (`[bus] status_history`); what is dropped is counted."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from pbxsms.core.model.events import State, StatusEvent, new_id, utcnow
from tests.support.gateway import Gateway

StartGateway = Callable[..., Awaitable[Gateway]]


async def test_history_is_capped_keeping_the_first_entry_and_the_newest(
        start_gateway: StartGateway) -> None:
    gw = await start_gateway(toml="[bus]\nstatus_history = 20\n")
    ours, start = new_id(), utcnow()
    await gw.runtime.status.apply(StatusEvent(id=ours, direction="outbound",
                                              state=State.QUEUED, channel="clicksend",
                                              at=start))
    # A flood of receipts (e.g. forged or repeated ones with new details): each a new entry.
    for n in range(1, 60):
        await gw.runtime.status.apply(StatusEvent(
            id=ours, direction="outbound", state=State.SENT, channel="clicksend",
            reason=f"receipt {n}", at=start + timedelta(seconds=n)))
    record = await gw.runtime.status.get(ours)
    assert record is not None
    assert len(record.history) == 20
    assert record.history_dropped == 40
    assert record.history[0].state == State.QUEUED
    assert [entry.reason for entry in record.history[-2:]] == ["receipt 58", "receipt 59"]
    assert record.state == State.SENT
