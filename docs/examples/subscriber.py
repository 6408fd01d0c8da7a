"""A PBX service reading pbxsms's events: a durable JetStream consumer, in a loop.

Run it as `python subscriber.py --subject 'sms.inbound.>' --durable crm-sync`. Stop it with
Ctrl-C and start it again: a *durable* consumer resumes after the last event it
acknowledged. `--replay` starts a new consumer from the oldest event the stream still
keeps (14 days by default, `[bus] max_age`); without it a new consumer sees only new events.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

STREAM = "SMS"
Handler = Callable[[str, dict[str, Any]], Awaitable[None]]


async def follow(url: str, subject: str, durable: str, handle: Handler,
                 stop: asyncio.Event, replay: bool = False) -> None:
    """Give each event on `subject` to `handle(subject, event)` until `stop` is set.

    An event is acknowledged only after `handle` returns: if it raises (or the process
    dies), JetStream delivers the event again after `ack_wait`. Events may therefore come
    twice: act once per `id`.
    """
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        config = ConsumerConfig(
            # Where a *new* consumer starts; an existing durable always resumes.
            deliver_policy=DeliverPolicy.ALL if replay else DeliverPolicy.NEW,
            ack_policy=AckPolicy.EXPLICIT, ack_wait=30, max_deliver=10)
        sub = await js.pull_subscribe(subject, durable=durable, stream=STREAM, config=config)
        while not stop.is_set():
            try:
                messages = await sub.fetch(batch=50, timeout=1.0)
            except TimeoutError:
                # Nothing new within the second: ask again (and check `stop`). nats-py
                # raises its own TimeoutError, or the built-in one when `fetch`'s deadline
                # runs out mid-way: catch the built-in, which both are.
                continue
            for msg in messages:
                await handle(msg.subject, json.loads(msg.data))
                await msg.ack()
    finally:
        await nc.flush()  # the last acknowledgements reach the server
        await nc.close()


def default_url() -> str:
    """NATS_URL, else the embedded server of a gateway run from this folder: it takes only
    clients with its token (PBXSMS_DATA_DIR/nats/auth-token, data folder `./var`)."""
    if os.environ.get("NATS_URL"):
        return os.environ["NATS_URL"].split(",")[0]
    token_file = Path(os.environ.get("PBXSMS_DATA_DIR", "var")) / "nats" / "auth-token"
    token = token_file.read_text().strip() if token_file.is_file() else ""
    return f"nats://{token}@127.0.0.1:4222" if token else "nats://127.0.0.1:4222"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=default_url())
    parser.add_argument("--subject", default="sms.inbound.>")
    parser.add_argument("--durable", default="example-subscriber")
    parser.add_argument("--replay", action="store_true",
                        help="a new consumer starts from the oldest stored event")
    args = parser.parse_args()

    async def show(subject: str, event: dict[str, Any]) -> None:
        print(subject, event.get("id"), event.get("state") or event.get("from"))

    await follow(args.url, args.subject, args.durable, show, asyncio.Event(), args.replay)


if __name__ == "__main__":
    asyncio.run(main())
