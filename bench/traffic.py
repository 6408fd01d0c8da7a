"""Bus traffic per inbound text: every NATS message a fixed batch of texts causes between
the gateway and its nats-server, counted on the server's side and sorted by kind.

The gateway (`pbxsms serve`, delivering to the app and by email) runs against a
nats-server started here from the same binary and with the same options as the embedded
one, plus its monitoring port. Two counts, taken over the same interval:

- the server's own: `in_msgs` + `out_msgs` of the gateway's connection (`/connz`);
- a breakdown: a subscription to `>` on another connection sees every message of the
  account as the server routes it (publishes, PubAcks and KV answers to the gateway's
  inboxes, consumer deliveries, acks), and each is sorted by its subject, reply subject
  and, for answers, by the request it answers.

Pull requests, their heartbeats and expiries and the watch's heartbeats come with time,
not with texts: they are counted apart ("housekeeping") and left out of the figure per
text. Texts are posted one after another (each until its 200), every one from a customer
new to the gateway, so the count is the same from run to run and includes the first
conversation write of each customer (the worst case); then a text from each of the same
customers again, whose conversations are known.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import aiohttp
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from bench.load import FORM, OURS
from bench.procs import Gateway, Sinks, free_port, stop, wait_http
from pbxsms.bus.embedded import nats_server_binary
from pbxsms.core.serve import eventloop
from pbxsms.core.stores.states import PREFIX as STATES_PREFIX

TEXTS = 100
WARMUP = 5
# The work of a batch is over once no message but housekeeping came for this long.
QUIET = 1.0

HOUSEKEEPING = "housekeeping"
UNSEEN = "not the gateway's"
SPY_INBOX = "_BENCH_SPY"
# Bucket names as the gateway uses them, for readable kinds.
_BUCKETS = {"sms_conversations": "conversation", "sms_deliveries": "ledger",
            "sms_messages": "status record",
            "sms_provider_ids": "provider id", "sms_numbers": "numbers"}


def _bucket(name: str, unknown: str) -> str:
    """A bucket's kind (the state index has one bucket per state)."""
    return "state index" if name.startswith(STATES_PREFIX) else _BUCKETS.get(name, unknown)


_CONSUMERS = {"deliver-mobileapp": "app", "deliver-email": "email",
              "status-store": "status fold"}


class CountedNats:
    """nats-server as the gateway embeds it (JetStream, file storage, loopback), with
    its monitoring port open."""

    def __init__(self, store: Path) -> None:
        self.port, self.monitor = free_port(), free_port()
        store.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js",
             "-sd", str(store), "-m", str(self.monitor), "-n", "pbxsms-bench-traffic"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"nats://127.0.0.1:{self.port}"
        try:
            wait_http(f"http://127.0.0.1:{self.monitor}/healthz")
        except RuntimeError:
            self.close()
            raise

    def connection(self, name: str) -> dict[str, int]:
        """`in_msgs` and `out_msgs` of the client connection called `name`, as the
        server counted them."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor}/connz?limit=1024",
                                    timeout=10) as answer:
            connz = json.load(answer)
        found = [c for c in connz["connections"] if c.get("name") == name]
        if len(found) != 1:
            raise RuntimeError(f"{len(found)} connections called {name!r}")
        return {"in": int(found[0]["in_msgs"]), "out": int(found[0]["out_msgs"])}

    def close(self) -> None:
        stop(self.process)


class Spy:
    """Sorts every message of the account by kind, from a subscription to `>`."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.last_work = time.monotonic()
        self._asked: dict[str, str] = {}  # reply subject -> what the request was

    def reset(self) -> None:
        self.counts.clear()
        self._asked.clear()

    async def start(self, nc: NATS) -> None:
        await nc.subscribe(">", cb=self._on_message)

    async def _on_message(self, msg: Msg) -> None:
        if msg.subject.startswith(SPY_INBOX):  # answers to our own requests
            return
        kind = self.kind(msg)
        self.counts[kind] += 1
        if not kind.startswith((HOUSEKEEPING, UNSEEN)):
            self.last_work = time.monotonic()

    def kind(self, msg: Msg) -> str:
        subject, reply = msg.subject, msg.reply
        status = (msg.headers or {}).get("Status")
        if subject in self._asked:  # an answer to a request seen before
            return self._asked.pop(subject)
        if status is not None and not reply:
            # Pull heartbeats (100), expired or filled requests (408, 404, 409), the
            # watch's heartbeats and flow control.
            return f"{HOUSEKEEPING}: pull and watch status ({status})"
        if reply.startswith("$JS.ACK."):
            return f"{_consumer(reply)}: delivery"
        if subject.startswith("$JS.ACK."):
            return f"{_consumer(subject)}: {_ack(msg.data)}"
        if subject.startswith("$JS.EVENT."):
            # Made by the server only because something (this count) listens: not sent
            # to the gateway, not in the server's count of its connection.
            return f"{UNSEEN}: {subject}"
        if subject.startswith("$JS.FC."):
            return f"{HOUSEKEEPING}: flow control answer"
        if subject.startswith("$JS.API.CONSUMER.MSG.NEXT."):
            return f"{HOUSEKEEPING}: pull request"
        if subject.startswith("$JS.API.STREAM.MSG.GET.KV_"):
            what = _bucket(subject.rsplit("KV_", 1)[1], subject)
            return self._request(msg, f"{what}: read", f"{what}: read answer")
        if subject.startswith("$JS.API."):
            return self._request(msg, f"JetStream API: {subject.split('.')[2]}",
                                 "JetStream API: answer")
        if subject.startswith("$KV."):
            what = _bucket(subject.split(".")[1], subject.split(".")[1])
            # Compare-and-set writes carry the revision they expect.
            how = "compare-and-set" if "Nats-Expected-Last-Subject-Sequence" in (
                msg.headers or {}) else "write"
            return self._request(msg, f"{what}: {how}", f"{what}: PubAck")
        if subject.startswith("sms."):
            what = {"inbound": "inbound event", "status": "status event",
                    "dead": "dead letter", "outbound": "outbound request"}.get(
                        subject.split(".")[1], subject)
            return self._request(msg, f"{what}: publish", f"{what}: PubAck")
        return f"other: {subject}"

    def _request(self, msg: Msg, kind: str, answer: str) -> str:
        if msg.reply:
            self._asked[msg.reply] = answer
        return kind


def _consumer(subject: str) -> str:
    # $JS.ACK.<stream>.<consumer>.…
    parts = subject.split(".")
    if parts[2].startswith("KV_"):
        return f"{_bucket(parts[2][3:], parts[2][3:])} watch"
    return _CONSUMERS.get(parts[3], parts[3])


def _ack(data: bytes) -> str:
    if data in (b"", b"+ACK"):
        return "ack"
    return {b"+WPI": "in progress", b"+TERM": "term"}.get(
        data, "nak" if data.startswith(b"-NAK") else "ack (other)")


def _form(n: int) -> bytes:
    """Text `n`, from a customer the gateway has not heard from."""
    customer = f"+614800{n:05d}"
    return FORM.format(ours=quote_plus(OURS), customer=quote_plus(customer),
                       body=quote_plus(f"Table for 4 at 8? bench#{n}"), ts=int(time.time()),
                       id=str(uuid.uuid4())).encode()


async def _post(url: str, first: int, count: int) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with aiohttp.ClientSession() as session:
        for n in range(first, first + count):
            async with session.post(url, data=_form(n), headers=headers) as answer:
                if answer.status != 200:
                    raise RuntimeError(f"webhook answered {answer.status}")


async def _settle(spy: Spy, sinks: Sinks, expected: int, timeout: float = 60.0) -> None:
    """Until both sinks have `expected` texts and the bus has been quiet for QUIET."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = await asyncio.to_thread(sinks.counts)
        if (counts["app"] >= expected and counts["email"] >= expected
                and time.monotonic() - spy.last_work >= QUIET):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"texts not delivered within {timeout:.0f} s: {counts}")


async def _measure(gateway: Gateway, server: CountedNats, sinks: Sinks,
                   texts: int) -> dict[str, Any]:
    nc = NATS()
    await nc.connect(server.url, name="bench-traffic-spy", no_echo=True,
                     inbox_prefix=SPY_INBOX)
    spy = Spy()
    try:
        await spy.start(nc)
        await nc.flush()
        sinks.reset()
        await _post(gateway.webhook, 0, WARMUP)  # buckets opened, consumers pulling
        await _settle(spy, sinks, WARMUP)
        first = await _batch(gateway, server, sinks, spy, nc, texts)
        # The same customers again: their conversations are known.
        again = await _batch(gateway, server, sinks, spy, nc, texts)
    finally:
        await nc.close()
    return {**first, "channels": ["mobileapp", "email"],
            "known_customers": {"per_text": again["per_text"],
                                "kinds_per_text": again["kinds_per_text"]}}


async def _batch(gateway: Gateway, server: CountedNats, sinks: Sinks, spy: Spy, nc: NATS,
                 texts: int) -> dict[str, Any]:
    """The messages of `texts` texts from customers WARMUP, WARMUP + 1, ..."""
    sinks.reset()
    spy.reset()
    before = server.connection("pbxsms")
    await _post(gateway.webhook, WARMUP, texts)
    await _settle(spy, sinks, texts)
    await nc.flush()
    after = server.connection("pbxsms")
    kinds = {kind: n for kind, n in sorted(spy.counts.items()) if not kind.startswith(UNSEEN)}
    work = sum(n for kind, n in kinds.items() if not kind.startswith(HOUSEKEEPING))
    return {"texts": texts, "per_text": work / texts, "messages": work,
            "housekeeping": sum(kinds.values()) - work,
            "server": {"in": after["in"] - before["in"], "out": after["out"] - before["out"],
                       "per_text": (after["in"] + after["out"] - before["in"]
                                    - before["out"]) / texts},
            "kinds": kinds,
            "kinds_per_text": {kind: round(n / texts, 2) for kind, n in kinds.items()
                               if not kind.startswith(HOUSEKEEPING)}}


def traffic(workdir: Path, sinks: Sinks, texts: int = TEXTS) -> dict[str, Any]:
    """NATS messages per inbound text delivered to the app and by email."""
    server = CountedNats(workdir / "traffic-nats")
    gateway = None
    try:
        gateway = Gateway(workdir / "traffic", sinks, ["clicksend", "mobileapp", "email"],
                          nats_url=server.url)
        return eventloop.run(_measure(gateway, server, sinks, texts))
    finally:
        if gateway is not None:
            gateway.close()
        server.close()


def describe(result: dict[str, Any]) -> str:
    """The breakdown, one line per kind, as `make bench` prints it."""
    lines = [f"NATS messages per inbound text (app + email, {result['texts']} texts, "
             f"each from a new customer): {result['per_text']:.2f}; the server counted "
             f"{result['server']['per_text']:.2f} for the gateway's connection "
             f"(in {result['server']['in']}, out {result['server']['out']}, with "
             f"{result['housekeeping']} of housekeeping)"]
    width = max(len(kind) for kind in result["kinds_per_text"])
    lines += [f"  {kind.ljust(width)}  {n:5.2f}" for kind, n in
              sorted(result["kinds_per_text"].items(), key=lambda item: -item[1])]
    lines.append(f"the same customers again (their conversations known): "
                 f"{result['known_customers']['per_text']:.2f} per text")
    return "\n".join(lines)
