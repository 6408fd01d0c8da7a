"""docs/events.md's subscriber and sender (docs/examples/*.py), run against a real gateway:
what the page shows is what works."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from nats.js.errors import NotFoundError

from pbxsms.sim.clicksend import ClickSendSimulator
from tests.helpers import wait_until
from tests.outbound.sending import OURS, dead_letters, recipient
from tests.support.gateway import Gateway

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
PAGE = EXAMPLES.parent / "events.md"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nats_url(gateway: Gateway) -> str:
    return gateway.runtime.config.core.nats_servers()[0]


class Subscriber:
    """The docs' `follow` running as a task, collecting what it is given."""

    def __init__(self, gateway: Gateway, durable: str, replay: bool = False) -> None:
        self.gateway, self.durable = gateway, durable
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.stop = asyncio.Event()

        async def handle(subject: str, event: dict[str, Any]) -> None:
            self.events.append((subject, event))

        self.task = asyncio.create_task(load("subscriber").follow(
            nats_url(gateway), "sms.status.>", durable, handle, self.stop, replay))

    async def started(self) -> None:
        async def exists() -> bool:
            try:
                await self.gateway.runtime.js.consumer_info("SMS", self.durable)
            except NotFoundError:
                return False
            return True

        await wait_until(exists, message=f"consumer {self.durable}")

    def states(self, message_id: str) -> list[str]:
        return [e["state"] for _, e in self.events if e["id"] == message_id]

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 30)


def test_the_page_shows_each_example_whole() -> None:
    page = PAGE.read_text()
    for name in ("subscriber", "sender"):
        assert (EXAMPLES / f"{name}.py").read_text() in page, f"events.md must show {name}.py"


async def test_the_sender_and_the_subscriber_work_against_a_gateway(
        sim: ClickSendSimulator, start_sending_gateway: Any) -> None:
    gateway = await start_sending_gateway()
    url = nats_url(gateway)
    sender = load("sender")
    follower = Subscriber(gateway, "docs-example")
    await follower.started()

    seen = await sender.send(url, OURS, recipient(5), "from the docs",
                             until=frozenset({"accepted"}), timeout=20)
    assert [e["state"] for e in seen][-1] == "accepted", seen
    sent_id = seen[0]["id"]
    assert [m["custom_string"] for m in sim.sent_messages] == [sent_id]
    await wait_until(lambda: "accepted" in follower.states(sent_id), 30,
                     "the subscriber to see the acceptance")

    # An invalid request becomes a `failed` status with the reason, and a dead letter.
    refused = await sender.send(url, OURS, "12", "to nobody",
                                until=frozenset({"failed", "unroutable"}), timeout=20)
    assert refused[-1]["state"] == "failed" and refused[-1]["error_code"] == "INVALID_REQUEST"
    assert "to:" in refused[-1]["reason"]
    letters = await dead_letters(gateway, 1, timeout=30)
    assert letters[0].id == refused[-1]["id"]
    await follower.close()

    # Durable: started again, it resumes after what it acknowledged.
    before = len(follower.events)
    again = Subscriber(gateway, "docs-example")
    more = await sender.send(url, OURS, recipient(6), "once more",
                             until=frozenset({"accepted"}), timeout=20)
    await wait_until(lambda: "accepted" in again.states(more[0]["id"]), 30, "the resumed one")
    assert again.states(sent_id) == [], "nothing already acknowledged comes again"
    await again.close()
    assert before > 0

    # Replay: a new consumer from the oldest stored event sees the first send too.
    replay = Subscriber(gateway, "docs-replay", replay=True)
    await wait_until(lambda: "accepted" in replay.states(sent_id), 30, "the replay")
    await replay.close()
