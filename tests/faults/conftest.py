"""Fault-suite fixtures: the Twilio simulator the Twilio scenarios post through; the results
table goes into the document `FAULTS_REPORT` names, and only then (`make test-faults` sets
it; `make test` clears it)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from pbxsms.sim.twilio import TwilioSimulator
from tests.faults.support import RESULTS, SECRETS, TWILIO_SID, write_report


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioSimulator]:
    """The Twilio account of the fault gateways (`fault_env`), signing its webhooks."""
    async with TwilioSimulator(SECRETS["TWILIO_AUTH_TOKEN"], TWILIO_SID) as simulator:
        yield simulator


@pytest.fixture(scope="session", autouse=True)
def results_table() -> Iterator[None]:
    yield
    target = os.environ.get("FAULTS_REPORT")
    if target and RESULTS:
        write_report(Path(target), RESULTS)
