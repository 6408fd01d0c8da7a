"""Outbound load: `python -m bench.publisher <nats_url> <count> [from [every]]` publishes
`count` send requests on `sms.outbound` (as another service of the PBX would) from our
ClickSend number (or `from`, e.g. the Telnyx one), in its own process,
and prints one JSON line with when it started and finished (wall clock). With `every`,
it first prints a line `{"sample": {tag: id}}` naming every `every`-th request, so that
their status can be followed while the rest are published.

It publishes through the gateway's own `Publisher` (one reply subscription, requests
pipelined), the requests serialised before the clock starts: nats-py's `js.publish`
took about 60 µs of CPU per request, CPU the gateway under test had to do without on
the two shared cores.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import nats

from bench.load import OURS
from pbxsms.bus.publish import Publisher
from pbxsms.core.model.events import OutboundRequest

WINDOW = 256  # publishes awaiting their PubAck at once


async def main(url: str, count: int, sender: str = OURS, every: int = 0) -> None:
    nc = await nats.connect(url)
    publisher = Publisher(nc)
    await publisher.start()
    requests = [OutboundRequest(**{"from": sender}, to=f"+614{n:08d}",
                                body=f"Your table is ready bench#{n}", source="bench")
                for n in range(count)]
    payloads = [(request.id, request.to_json()) for request in requests]
    if every:
        sample = {str(n): requests[n].id for n in range(0, count, every)}
        print(json.dumps({"sample": sample}), flush=True)
    started = time.time()
    for first in range(0, count, WINDOW):
        acks = [await publisher.send("sms.outbound", payload, msg_id, timeout=30)
                for msg_id, payload in payloads[first:first + WINDOW]]
        await asyncio.gather(*acks)  # a PublishError stops the run: nothing is lost quietly
    print(json.dumps({"started": started, "published": time.time()}), flush=True)
    await nc.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(args[0], int(args[1]), args[2] if len(args) > 2 else OURS,
                     int(args[3]) if len(args) > 3 else 0))
