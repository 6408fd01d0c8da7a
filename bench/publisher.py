"""Outbound load: `python -m bench.publisher <nats_url> <count>` publishes `count` send
requests on `sms.outbound` (as another service of the PBX would), in its own process,
and prints one JSON line with when it started and finished (wall clock).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import nats

from bench.load import OURS
from pbxsms.core.events import OutboundRequest

WINDOW = 256  # publishes awaiting their PubAck at once


async def main(url: str, count: int) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream(timeout=30)
    requests = [OutboundRequest(**{"from": OURS}, to=f"+614{n:08d}",
                                body=f"Your table is ready bench#{n}", source="bench")
                for n in range(count)]
    started = time.time()
    for first in range(0, count, WINDOW):
        await asyncio.gather(*(
            js.publish("sms.outbound", request.to_json(), headers={"Nats-Msg-Id": request.id})
            for request in requests[first:first + WINDOW]))
    print(json.dumps({"started": started, "published": time.time()}), flush=True)
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
