"""Thousands of generated webhooks: never a 5xx, never an event from one that was refused.

Hypothesis runs synchronously in a worker thread against one gateway (fast: no server per
example); each example's HTTP request and stream check run on the test's event loop.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

from aiohttp import ClientSession
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbxsms.core.model.events import InboundMessage, StatusEvent
from tests.clicksend.samples import INBOUND_JSON, RECEIPT_JSON, SAMPLE_SUBACCOUNT
from tests.support.gateway import Gateway

StartGateway = Callable[..., Awaitable[Gateway]]
T = TypeVar("T")

EXAMPLES = 2000
TOKEN = "fuzz-token-0123456789"
PATHS = ["/webhook/clicksend/sms", "/webhook/clicksend/dlr"]


@dataclass
class Webhook:
    """One generated request, and what it must get when known in advance."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    refuse: int | None = None  # the status it must get: 401 bad token, 405 wrong method
    must_fail: bool = False  # invalid by construction: some 4xx
    notes: list[str] = field(default_factory=list)


odd_text = st.text(st.characters(categories=["Cs", "Cc", "Zs", "Lo", "So", "Mn"]), min_size=1,
                   max_size=10)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30), odd_text,
    st.text("+0123456789 ()-", max_size=18),
    st.sampled_from(["+61429912603", "0429912603", "+14155550123", "", " ", "null", "201",
                     "200", "300", "301", str(uuid.uuid4()), "1F12D781-99C1-6D94-96FE"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=4)
keys = st.sampled_from([
    "from", "sms", "to", "originalsenderid", "body", "message", "message_id",
    "original_message_id", "original_body", "custom_string", "customstring", "timestamp",
    "user_id", "subaccount_id", "status_code", "status_text", "error_code", "error_text",
    "token"]) | st.text(max_size=12)


@st.composite
def payloads(draw: st.DrawFn) -> tuple[dict[str, Any], bool]:
    """A sample payload, mutated; True when it has no sender and is no receipt."""
    base: dict[str, Any] = json.loads(draw(st.sampled_from([INBOUND_JSON, RECEIPT_JSON])))
    base["subaccount_id"] = int(SAMPLE_SUBACCOUNT)
    if draw(st.booleans()):  # a new message, else a repeat of the sample's
        base["message_id"] = str(draw(st.uuids())).upper()
    if draw(st.booleans()):
        base["custom_string"] = str(draw(st.uuids()))
    mutated = st.lists(st.sampled_from(sorted(base)), max_size=4, unique=True)
    for key in draw(mutated):
        action = draw(st.sampled_from(["drop", "replace", "append"]))
        if action == "drop":
            del base[key]
        elif action == "append" and isinstance(base[key], str):
            base[key] += draw(odd_text)
        elif action == "replace":
            base[key] = draw(values)
    for key, value in draw(st.lists(st.tuples(keys, values), max_size=4)):
        base[key] = value
    if draw(st.integers(0, 15)) == 0:  # now and then, over the 64 KiB limit
        base[draw(keys)] = "x" * draw(st.integers(60_000, 70_000))
    no_sender = all(key not in base for key in ("from", "sms", "message_id"))
    return base, no_sender


def form_encode(data: dict[str, Any]) -> str:
    pairs = []
    for key, value in data.items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            text = json.dumps(item) if isinstance(item, dict) else str(item)
            pairs.append(f"{quote(key, errors='surrogatepass')}="
                         f"{quote(text, errors='surrogatepass')}")
    return "&".join(pairs)


def multipart(data: dict[str, Any], boundary: str = "fuzzb0undary") -> bytes:
    parts = []
    for key, value in data.items():
        text = str(value).encode("utf-8", "surrogatepass")
        name = key.replace('"', "").encode("utf-8", "surrogatepass")
        parts.append(b"--" + boundary.encode() + b"\r\nContent-Disposition: form-data; name=\""
                     + name + b"\"\r\n\r\n" + text + b"\r\n")
    return b"".join(parts) + b"--" + boundary.encode() + b"--\r\n"


@st.composite
def webhooks(draw: st.DrawFn) -> Webhook:
    data, no_sender = draw(payloads())
    token_choice = draw(st.sampled_from(["right"] * 8 + ["missing", "wrong"]))
    query = {"right": f"token={TOKEN}", "missing": "", "wrong": "token=fuzz"}[token_choice]
    shape = draw(st.sampled_from(["json", "json", "form", "form", "get", "multipart",
                                  "json-not-object", "raw"]))
    hook = Webhook("POST", draw(st.sampled_from(PATHS)), query, {}, b"")
    hook.refuse = 401 if token_choice != "right" else None
    hook.notes.append(shape)
    if shape == "json":
        hook.headers["Content-Type"] = draw(st.sampled_from(
            ["application/json", "application/json; charset=utf-8"]))
        hook.body = json.dumps(data).encode("utf-8", "surrogatepass")
        hook.must_fail = no_sender
    elif shape == "form":
        hook.headers["Content-Type"] = "application/x-www-form-urlencoded"
        hook.body = form_encode(data).encode()
        hook.must_fail = no_sender
    elif shape == "get":
        hook.method = "GET"
        encoded = form_encode({k: v for k, v in data.items() if len(str(v)) < 500})
        hook.query = "&".join(part for part in (hook.query, encoded) if part)
        if hook.path.endswith("/dlr"):
            hook.refuse = 405  # receipts are POSTed
    elif shape == "multipart":
        hook.headers["Content-Type"] = "multipart/form-data; boundary=fuzzb0undary"
        hook.body = multipart(data)
        hook.must_fail = no_sender
    elif shape == "json-not-object":
        hook.headers["Content-Type"] = "application/json"
        hook.body = json.dumps(draw(st.one_of(
            st.lists(scalars, max_size=3), scalars.filter(lambda v: not isinstance(v, str)
                                                          or len(v) < 1000)))).encode(
            "utf-8", "surrogatepass")
        hook.must_fail = True
    else:
        hook.headers["Content-Type"] = draw(st.sampled_from([
            "application/json", "application/x-www-form-urlencoded", "text/plain",
            "application/octet-stream", "multipart/form-data", "multipart/form-data; boundary=x",
            "application/x-www-form-urlencoded; charset=latin-1"]))
        hook.body = draw(st.binary(min_size=1, max_size=300))
        hook.must_fail = hook.headers["Content-Type"] in ("text/plain",
                                                          "application/octet-stream")
    return hook


def run_in(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)


async def test_generated_webhooks_never_fail_and_refusals_publish_nothing(
        start_gateway: StartGateway) -> None:
    gw = await start_gateway(env={"CLICKSEND_WEBHOOK_TOKEN": TOKEN,
                                  "CLICKSEND_SUBACCOUNT_ID": SAMPLE_SUBACCOUNT})
    js, stream = gw.runtime.js, gw.runtime.stream
    loop = asyncio.get_running_loop()
    tally: Counter[str] = Counter()
    http = ClientSession()

    async def last_seq() -> int:
        return int((await js.stream_info(stream)).state.last_seq)

    async def send(hook: Webhook) -> tuple[int, dict[str, Any], int, int]:
        before = await last_seq()
        url = gw.url + hook.path + (f"?{hook.query}" if hook.query else "")
        async with http.request(hook.method, url, data=hook.body or None,
                                headers=hook.headers) as resp:
            text = await resp.text()
        answer = json.loads(text) if text.startswith("{") else {"raw": text}
        return resp.status, answer, before, await last_seq()

    async def subjects(first: int, last: int) -> list[str]:
        """What was stored between two sequences: says which event a failure is about."""
        return [(await js.get_msg(stream, seq)).subject or "" for seq in range(first, last + 1)]

    def new_subjects(before: int, after: int) -> list[str]:
        return run_in(loop, subjects(before + 1, after)) if after > before else []

    async def last_event() -> tuple[str, dict[str, Any]]:
        msg = await js.get_last_msg(stream, "sms.>")
        return msg.subject or "", json.loads(msg.data or b"{}")

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(hook=webhooks())
    def check(hook: Webhook) -> None:
        status, answer, before, after = run_in(loop, send(hook))
        tally[f"{status}"] += 1
        assert status < 500, (status, answer, hook)
        if hook.refuse is not None:
            assert status == hook.refuse, (status, answer, hook)
        if hook.must_fail:
            assert 400 <= status < 500, (status, answer, hook)
        if status != 200:
            assert after == before, ("an event from a refused webhook", status, answer, hook,
                                     new_subjects(before, after))
            return
        result = answer["result"]
        tally[result] += 1
        if result != "accepted":
            assert after == before, (answer, hook, new_subjects(before, after))
            return
        subject, event = run_in(loop, last_event())
        assert event["id"] == answer["id"]
        if after == before + 2:
            # To a number that is not ours: stored, then its `unroutable` status.
            assert (subject, event["state"]) == (f"sms.status.{answer['id']}", "unroutable")
            return
        assert after == before + 1, (answer, hook, new_subjects(before, after))
        if subject.startswith("sms.inbound."):
            message = InboundMessage.model_validate(event)
            assert message.from_.startswith("+") and message.to.startswith("+")
        else:
            assert subject == f"sms.status.{answer['id']}"
            StatusEvent.model_validate(event)

    try:
        await asyncio.to_thread(check)
    finally:
        await http.close()
    assert sum(count for key, count in tally.items() if key.isdigit()) >= EXAMPLES
    # The generator reaches every kind of answer, valid ones included.
    assert {"200", "400", "401", "403"} <= set(tally), tally
    assert tally["accepted"] > 0, tally
