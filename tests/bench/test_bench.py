"""`make bench` must not rot: its harness runs briefly here against the real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_bench_harness_runs_every_measurement(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--seconds", "1", "--rate", "40", "--messages", "40",
         "--console-messages", "300",
         "--console-requests", "50", "--out", str(out)], capture_output=True, text=True,
        timeout=150, cwd=Path(__file__).parents[2])
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["ingest"]["gateway"]["requests"] > 0
    assert results["ingest"]["gateway"]["errors"] == 0
    assert results["ingest"]["stored"]["requests"] > 0  # the store-only yardstick ran
    assert results["ingest"]["stored"]["errors"] == 0
    assert results["end_to_end_sustained"]["tried"]
    assert results["end_to_end_sustained"]["delivered"] == results["end_to_end_sustained"]["sent"]
    assert results["end_to_end"]["delivered"] == results["end_to_end"]["sent"] > 0
    assert results["outbound_batched"]["accepted"] == 40
    assert results["outbound_single"]["send_requests"] == 40
    assert results["outbound_telnyx"]["accepted"] == 40
    assert results["outbound_telnyx"]["send_requests"] == 40
    assert results["console_thread"]["messages"] == 300
    assert results["console_thread"]["requests"] == 50
    assert results["console_thread"]["p99_ms"] > 0
    assert 0 < results["peak_rss_mb"] < 1000
    assert "inbound end to end" in run.stdout
