"""The gateway's far ends, in their own process: ClickSend, Telnyx, Twilio and app
simulators, an SMTP sink.

Started as `python -m bench.sinks`; prints one JSON line with its URLs when ready, and
answers `GET /stats` with when each message arrived (wall clock, as the load generators
stamp it), so latency is measured outside the gateway; `GET /counts` says how many did.
Everything runs on one event loop (uvloop, as the gateway): aiosmtpd's `Controller` would
serve SMTP from a thread of its own, whose loop then contends with the simulators' for
the GIL and slows both.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from email._header_value_parser import get_addr_spec, get_angle_addr
from email.errors import HeaderParseError
from typing import Any

from aiohttp import web

from pbxsms.core.serve import eventloop
from pbxsms.sim.clicksend import ClickSendSimulator
from pbxsms.sim.mobileapp import MobileAppSimulator
from pbxsms.sim.mta import TogetherSMTP
from pbxsms.sim.telnyx import TelnyxSimulator
from pbxsms.sim.twilio import TwilioSimulator

USER, KEY = "bench-user", "bench-key"
TELNYX_KEY = "bench-telnyx-key"
TELNYX_OURS = "+13125550100"  # extension 202's number, on Telnyx
TWILIO_SID, TWILIO_TOKEN = "AC" + "be" * 16, "bench-twilio-token"
TWILIO_OURS = "+13125550142"  # extension 203's number, on Twilio
APP_TOKEN = "bench-app-token"
TAG = "bench#"  # message bodies carry `bench#<n>`


def tag_of(text: str) -> str | None:
    start = text.find(TAG)
    if start < 0:
        return None
    end = start + len(TAG)
    while end < len(text) and text[end].isdigit():
        end += 1
    return text[start + len(TAG):end]


class Sink:
    """SMTP handler keeping only when each tagged message arrived. It offers PIPELINING
    (RFC 2920), as every common MTA does."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.content
        text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
        tag = tag_of(text)
        if tag is not None:
            self.arrived.setdefault(tag, time.time())
        return "250 Message accepted for delivery"


class SinkSMTP(TogetherSMTP):
    """aiosmtpd's SMTP server. Its `_getaddr` (1.4.6) defines a `typing.Protocol` class on
    every MAIL and RCPT, which took a sixth of this process's CPU: the same parse here,
    without it. Like a real MTA, it answers commands that came together at once."""

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        if not arg:
            return "", ""
        try:
            if arg.lstrip().startswith("<"):
                angle, rest = get_angle_addr(arg)
                addr: str = angle.addr_spec
            else:
                spec, rest = get_addr_spec(arg)
                addr = spec.addr_spec
        except HeaderParseError:
            return None, None
        localpart = addr.rpartition("@")[0]
        if self.local_part_limit and len(localpart) > self.local_part_limit:
            return None, None
        return addr, rest


class CountingClickSend(ClickSendSimulator):
    """The simulator, noting when its accepted-message count last grew, and when it
    accepted each of the watched tagged messages (the freshness measurement)."""

    last_accept: float = 0.0
    first_accept: float = 0.0

    def __init__(self, accounts: list[tuple[str, str]]) -> None:
        super().__init__(accounts)
        # (how many messages were accepted, when): one mark per call, its tags read
        # only when asked (`accepted_watched`), so that a burst costs no parsing here.
        self.marks: list[tuple[int, float]] = []
        self.watched: set[str] = set()
        self.accepted: dict[str, float] = {}
        self._looked_at = 0  # marks already read
        self._counted = 0  # messages already read

    async def _send(self, request: web.Request, account: Any, rec: Any) -> web.Response:
        response: web.Response = await super()._send(request, account, rec)
        now = time.time()
        self.first_accept = self.first_accept or now
        self.last_accept = now
        # No await since the simulator stored this call's messages: they are the last.
        self.marks.append((len(self.sent_messages), now))
        return response

    def accepted_watched(self) -> dict[str, float]:
        """When each watched tag was accepted, read from the calls not yet looked at."""
        for end, at in self.marks[self._looked_at:]:
            for message in self.sent_messages[self._counted:end]:
                tag = tag_of(str(message.get("body", "")))
                if tag in self.watched:
                    self.accepted.setdefault(tag, at)
            self._counted = max(self._counted, end)
        self._looked_at = len(self.marks)
        return self.accepted

    def forget(self) -> None:
        self.marks.clear()
        self.watched.clear()
        self.accepted.clear()
        self._looked_at = self._counted = 0


class CountingTelnyx(TelnyxSimulator):
    """The Telnyx simulator, noting when it accepted each message (one a call)."""

    def __init__(self, keys: list[str]) -> None:
        super().__init__(keys)
        self.accepted_at: list[float] = []

    def _send(self, body: Any) -> tuple[int, dict[str, Any]]:
        answer = super()._send(body)
        if answer[0] == 200:
            self.accepted_at.append(time.time())
        return answer


class CountingTwilio(TwilioSimulator):
    """The Twilio simulator, noting when it created each message (one a call)."""

    def __init__(self) -> None:
        super().__init__(TWILIO_TOKEN, TWILIO_SID)
        self.accepted_at: list[float] = []

    async def _create(self, request: web.Request, rec: Any) -> web.StreamResponse:
        response = await super()._create(request, rec)
        if response.status == 201:
            self.accepted_at.append(time.time())
        return response


def one_per_call_stats(accepted_at: list[float], requests: int, times: bool
                       ) -> dict[str, Any]:
    """A one-message-a-call carrier's counts; with `times`, when each message was taken."""
    stats: dict[str, Any] = {"accepted": len(accepted_at), "requests": requests,
                             "first": accepted_at[0] if accepted_at else 0.0,
                             "last": accepted_at[-1] if accepted_at else 0.0}
    return {**stats, "accepted_at": accepted_at} if times else stats


async def main(smtp_port: int) -> None:
    clicksend = CountingClickSend([(USER, KEY)])
    telnyx = CountingTelnyx([TELNYX_KEY])
    await telnyx.start()
    twilio = CountingTwilio()
    await twilio.start()
    app = MobileAppSimulator(APP_TOKEN)
    sink = Sink()
    await clicksend.start()
    await app.start()
    # What aiosmtpd's Controller would serve (UTF-8 allowed), on this loop.
    smtp = await asyncio.get_running_loop().create_server(
        lambda: SinkSMTP(sink, hostname="bench-sink", enable_SMTPUTF8=True), "127.0.0.1",
        smtp_port)

    # When each tagged push arrived, kept up to date from the pushes not yet looked at:
    # the bench polls while the gateway works, and must not make this process busier.
    pushed: dict[str, float] = {}
    looked_at = [0]

    def app_arrived() -> dict[str, float]:
        for push in app.pushes[looked_at[0]:]:
            tag = tag_of(push.content)
            if tag is not None:
                pushed.setdefault(tag, push.received_at)
        looked_at[0] = len(app.pushes)
        return pushed

    def clicksend_stats() -> dict[str, Any]:
        return {"accepted": len(clicksend.sent_messages),
                "requests": len(clicksend.send_requests),
                "first": clicksend.first_accept, "last": clicksend.last_accept}

    def carriers(times: bool) -> dict[str, Any]:
        return {"telnyx": one_per_call_stats(telnyx.accepted_at, len(telnyx.send_requests),
                                             times),
                "twilio": one_per_call_stats(twilio.accepted_at,
                                             len(twilio.create_requests), times)}

    async def counts(request: web.Request) -> web.Response:
        """How many messages arrived where: cheap enough to poll."""
        return web.json_response({"app": len(app_arrived()), "email": len(sink.arrived),
                                  "clicksend": clicksend_stats(), **carriers(times=False)})

    async def stats(request: web.Request) -> web.Response:
        """When each message arrived: asked once, at the end."""
        return web.json_response({"app": app_arrived(), "email": sink.arrived,
                                  "clicksend": clicksend_stats(), **carriers(times=True)})

    async def watch(request: web.Request) -> web.Response:
        """Note when ClickSend accepts the tagged messages named in the body's list."""
        clicksend.watched.update(str(tag) for tag in await request.json())
        return web.json_response({})

    async def accepted(request: web.Request) -> web.Response:
        """When ClickSend accepted each watched message, so far."""
        return web.json_response(clicksend.accepted_watched())

    async def reset(request: web.Request) -> web.Response:
        app.pushes.clear()
        app.requests.clear()
        pushed.clear()
        looked_at[0] = 0
        sink.arrived.clear()
        clicksend.reset()
        clicksend.forget()
        clicksend.first_accept = clicksend.last_accept = 0.0
        for carrier in (telnyx, twilio):
            carrier.reset()
            carrier.accepted_at.clear()
        return web.json_response({})

    control = web.Application()
    control.router.add_get("/counts", counts)
    control.router.add_get("/stats", stats)
    control.router.add_post("/reset", reset)
    control.router.add_post("/watch", watch)
    control.router.add_get("/accepted", accepted)
    runner = web.AppRunner(control, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(json.dumps({"control": f"http://127.0.0.1:{port}", "clicksend": clicksend.base_url,
                      "telnyx": telnyx.base_url, "telnyx_public_key": telnyx.public_key,
                      "twilio": twilio.base_url,
                      "app": app.api_url, "smtp_port": smtp_port}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    smtp.close()
    await runner.cleanup()
    await app.stop()
    await clicksend.stop()
    await telnyx.stop()
    await twilio.stop()


if __name__ == "__main__":
    eventloop.run(main(int(sys.argv[1])))
