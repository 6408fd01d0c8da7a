"""Fault-suite fixtures: the app simulator and SMTP server run in the test process; the
results table is written to the document `FAULTS_REPORT` names (make test-faults)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.delivery.conftest import app, smtp
from tests.faults.support import RESULTS, write_report
from tests.freeswitch.conftest import fake

__all__ = ["app", "fake", "smtp"]


@pytest.fixture(scope="session", autouse=True)
def report() -> Iterator[None]:
    yield
    target = os.environ.get("FAULTS_REPORT")
    if target and RESULTS:
        write_report(Path(target), RESULTS)
