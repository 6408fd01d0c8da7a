"""Screenshots of every console page for docs/console/, from a seeded gateway.

    .venv/bin/python -m tests.console.screenshots docs/console

Starts a nats-server, the ClickSend simulator and a gateway with the console, fills it
with a few conversations (a delivered reply, a failed one, an unroutable text), and saves
each page at 1280x800 and 390x844 (a phone).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.core.model.events import OutboundRequest
from pbxsms.core.outbound.api import queue_outbound
from pbxsms.core.serve.server import Server
from pbxsms.sim.clicksend import ClickSendSimulator
from tests.console.browser import Browser
from tests.console.support import KEY, OURS_A, OURS_B, PASSWORD, TOML, USER, env
from tests.helpers import free_port, make_config, wait_until

SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
CUSTOMERS = ["+61400000001", "+61400000002", "+61400000003", "+61400000004"]


async def seed(server: Server, sim: ClickSendSimulator, base: str) -> str:
    from pbxsms.plugins.console.plugin import _console
    from pbxsms.plugins.console.users import new_user

    console = _console(server.runtime)
    await console.users.put(new_user("frontdesk", PASSWORD))
    hook = f"{base}/webhook/clicksend/sms?token=hook-t0ken"
    texts = [
        (CUSTOMERS[0], OURS_A, "Hi, can I move my appointment to Thursday afternoon?"),
        (CUSTOMERS[1], OURS_A, "Is the clinic open on the public holiday?"),
        (CUSTOMERS[2], OURS_B, "Please call me back about the invoice, thanks"),
        (CUSTOMERS[3], OURS_A, "Running 10 min late, sorry! <b>not bold</b>"),
    ]
    for customer, ours, body in texts:
        await sim.push_inbound(hook, customer, ours, body)
    replies = [(CUSTOMERS[0], "Sure, Thursday 2:30pm works. See you then!"),
               (CUSTOMERS[1], "Yes, 9am to 1pm. Happy holidays 🎉")]
    ids = []
    for customer, body in replies:
        request = OutboundRequest.model_validate(
            {"from": OURS_A, "to": customer, "body": body, "source": "console"})
        ids.append((await queue_outbound(server.runtime, request)).request.id)
    await wait_until(lambda: len(sim.sent_messages) >= 2, message="replies sent")
    for sent in sim.sent_messages:
        await sim.push_receipt(f"{base}/webhook/clicksend/dlr?token=hook-t0ken",
                               sent["message_id"], 201)
    await sim.push_inbound(hook, CUSTOMERS[0], OURS_A, "Perfect, thank you 🙏")
    sim.force_status(CUSTOMERS[3], "INVALID_RECIPIENT")
    await queue_outbound(server.runtime, OutboundRequest.model_validate(
        {"from": OURS_A, "to": CUSTOMERS[3], "body": "No problem, see you soon.",
         "source": "console"}))
    await sim.push_inbound(hook, CUSTOMERS[1], "+61481079999", "Hello? Is this the clinic?")
    conv = f"{OURS_A[1:]}.{CUSTOMERS[0][1:]}"

    async def settled() -> bool:
        threads = await console.index.all_threads()
        page = await console.index.page(next(t for t in threads if t.conv == conv))
        return len(threads) >= 5 and any(e.state == "delivered" for e in page)

    await wait_until(settled, timeout=20, message="the seeded conversations indexed")
    return conv


async def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        nats = EmbeddedNats(free_port(), Path(tmp) / "nats")
        await nats.start()
        sim = ClickSendSimulator([(USER, KEY)])
        await sim.start()
        config, plugins = make_config(Path(tmp), TOML, {"NATS_URL": nats.url,
                                                        **env(sim.base_url)})
        server = Server(config, plugins)
        await server.start()
        base = f"http://127.0.0.1:{server.port}"
        try:
            conv = await seed(server, sim, base)
            pages = {"login": "/console/login", "conversations": "/console/",
                     "thread": f"/console/t/{conv}", "numbers": "/console/numbers",
                     "number-form": f"/console/numbers/{OURS_A.replace('+', '%2B')}",
                     "problems": "/console/problems"}
            for size, (width, height) in SIZES.items():
                browser = await Browser.open(width, height)
                try:
                    await browser.run(browser.driver.execute_cdp_cmd,
                                      "Emulation.setDeviceMetricsOverride",
                                      {"width": width, "height": height,
                                       "deviceScaleFactor": 1, "mobile": size == "phone"})
                    await browser.get(base + pages["login"])
                    await browser.screenshot(out / f"login-{size}.png")
                    await browser.sign_in(base, "frontdesk", PASSWORD)
                    for name, path in pages.items():
                        if name != "login":
                            await browser.get(base + path)
                            await browser.screenshot(out / f"{name}-{size}.png")
                finally:
                    await browser.close()
        finally:
            await server.stop()
            await sim.stop()
            await nats.stop()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/console")))
