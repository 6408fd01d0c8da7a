"""Fault-suite fixtures: the results table goes into the document `FAULTS_REPORT` names, and
only then (`make test-faults` sets it; `make test` clears it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.support import RESULTS, write_report


@pytest.fixture(scope="session", autouse=True)
def results_table() -> Iterator[None]:
    yield
    target = os.environ.get("FAULTS_REPORT")
    if target and RESULTS:
        write_report(Path(target), RESULTS)
