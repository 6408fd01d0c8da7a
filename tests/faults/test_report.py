"""The results table of docs/reliability.md is written only when asked: `make test-faults`
sets FAULTS_REPORT, `make test` clears it whatever the caller's environment holds, so
`make test` never rewrites a tracked file."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def make(target: str, tmp_path: Path) -> list[str]:
    """Run `make <target>` with a stand-in python that records, per call, its arguments
    and the fault variables it was given (the caller's environment asks for a report)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    venv, calls = tmp_path / "venv", tmp_path / "calls"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text("#!/bin/sh\n"
                      f'echo "$* | report=${{FAULTS_REPORT-unset}} full=${{FAULTS_FULL-unset}}"'
                      f' >> "{calls}"\n')
    python.chmod(0o755)
    stamp = venv / ".installed"  # newer than pyproject.toml: make installs nothing
    stamp.touch()
    later = time.time() + 3600
    os.utime(stamp, (later, later))
    env = {**os.environ, "FAULTS_REPORT": "docs/reliability.md", "FAULTS_FULL": "1"}
    run = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), target,
                          f"VENV={venv}"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    return calls.read_text().splitlines()


def test_make_test_runs_pytest_without_asking_for_the_report(tmp_path: Path) -> None:
    calls = make("test", tmp_path)
    assert [call for call in calls if call.startswith("-m pytest")] == calls and calls
    assert all(call.endswith("| report=unset full=unset") for call in calls), calls


def test_make_test_faults_asks_for_the_report(tmp_path: Path) -> None:
    calls = make("test-faults", tmp_path)
    assert len(calls) == 1 and calls[0].startswith("-m pytest"), calls
    assert calls[0].endswith("| report=docs/reliability.md full=1"), calls
    assert "tests/faults" in calls[0]
