"""The bus traffic per inbound text, counted by `python -m bench --only traffic`, stays
within its bound: a change that adds NATS messages to every text fails here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# NATS messages per inbound text delivered to the app and by email, each from a new
# customer (docs/performance.md, "Bus traffic"): 23 exactly in every run (since the
# producers fold the status records and the ledger lives in them; the two channels' reads
# of one record share one request); the margin is for a timeout on a busy machine, less
# than one message per text.
BOUND = 23.5


def test_each_text_costs_at_most_the_bound_in_nats_messages() -> None:
    texts = 30
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "traffic", "--texts", str(texts)],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2])
    assert run.returncode == 0, run.stderr[-3000:]
    result, _ = json.JSONDecoder().raw_decode(run.stdout)
    counted = result["traffic"]
    assert counted["texts"] == texts
    kinds = counted["kinds"]
    # Every text was stored once and delivered once on each channel.
    assert kinds["inbound event: publish"] == texts
    assert kinds["app: delivery"] == kinds["email: delivery"] == texts
    # The breakdown misses nothing: it adds up to what the server counted for the
    # gateway's connection over the same interval (give or take a heartbeat the server
    # sent between its count and the breakdown's last message).
    server = counted["server"]
    assert abs(counted["messages"] + counted["housekeeping"]
               - server["in"] - server["out"]) <= 4
    assert counted["per_text"] <= BOUND, "\n" + run.stdout[run.stdout.index("NATS messages"):]
    assert "NATS messages per inbound text" in run.stdout
