"""A PBX service asking pbxsms to send an SMS over NATS, then following its status.

Run it as `python sender.py --from +61411111111 --to +61422222222 "See you at 10"`.
The request needs its own `id` (a UUID): it is the message's id everywhere, and as the
`Nats-Msg-Id` header it makes a repeated publish (your retry) the same request. The
answer comes as status events on `sms.status.<id>`: `queued`/`sending`, then `accepted`
(the carrier took it), later `delivered` or `failed` from the delivery receipt. A request
pbxsms cannot send (an invalid number, an empty text, no such sending number) becomes a
`failed` (or `unroutable`) status with the reason, and a dead letter on
`sms.dead.outbound`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import uuid
from pathlib import Path
from typing import Any

import nats
import nats.errors

# States after which nothing more happens to the send (`accepted` waits for a receipt).
FINAL = {"delivered", "failed", "unroutable", "unknown"}


async def send(url: str, sender: str, to: str, body: str,
               until: frozenset[str] = frozenset(FINAL),
               timeout: float = 60.0) -> list[dict[str, Any]]:
    """Publish one send request; its status events until one in `until` (or `timeout`)."""
    message_id = str(uuid.uuid4())
    request = {"id": message_id, "from": sender, "to": to, "body": body,
               "source": "example-sender"}
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        # Follow the status subject first, from its start: no event can be missed.
        statuses = await js.subscribe(f"sms.status.{message_id}", ordered_consumer=True)
        ack = await js.publish("sms.outbound", json.dumps(request).encode(),
                               headers={"Nats-Msg-Id": message_id})
        print(f"stored as {message_id} (stream sequence {ack.seq})")
        seen: list[dict[str, Any]] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            try:
                msg = await statuses.next_msg(timeout=max(left, 0.001))
            except nats.errors.TimeoutError:
                print(f"no final state within {timeout:.0f}s")  # it may still come
                return seen
            event = json.loads(msg.data)
            seen.append(event)
            print(event["state"], event.get("reason") or "")
            if event["state"] in until:
                return seen
    finally:
        await nc.drain()


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
    parser.add_argument("--from", dest="sender", required=True, help="our number")
    parser.add_argument("--to", required=True)
    parser.add_argument("text")
    args = parser.parse_args()
    await send(args.url, args.sender, args.to, args.text)


if __name__ == "__main__":
    asyncio.run(main())
