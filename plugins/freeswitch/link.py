"""The gateway's one event-socket connection, and what arrives on it.

Delivery reports are handed to the send that waits for them, matched by our attempt
header (mod_sms copies every header of the SMS::SEND_MESSAGE into its report); a phone's
text (`MESSAGE`, fired by the chatplan) goes to the replies handler. A report that comes
after its send stopped waiting is not lost: a `Success` one is kept, so that the retry of
that message is settled as delivered instead of texting the phone a second time.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable

from pbxsms.plugins.freeswitch.esl import EslClient, Event
from pbxsms.plugins.freeswitch.settings import FreeSwitchSettings

log = logging.getLogger("pbxsms.freeswitch")

# Our headers on every SMS::SEND_MESSAGE: our message id, and this attempt's token.
ID_HEADER = "x-pbxsms-id"
ATTEMPT_HEADER = "x-pbxsms-attempt"
REPORT = "SMS::DELIVERY_REPORT"
# Subscribed before anything is sent, so that a fast report is never missed.
EVENTS = ("MESSAGE", REPORT, "sofia::error")
LATE_KEPT = 10_000


def link_key(settings: FreeSwitchSettings) -> tuple[object, ...]:
    """What a new connection is needed for when it changes."""
    password = settings.esl_password.get_secret_value() if settings.esl_password else None
    return settings.esl_host, settings.esl_port, password, settings.timeout


class FreeSwitchLink:
    """The client, the sends waiting for their reports, and late successes."""

    def __init__(self, settings: FreeSwitchSettings,
                 on_message: Callable[[Event], None]) -> None:
        assert settings.esl_password is not None
        self.key = link_key(settings)
        self.on_message = on_message
        self.client = EslClient(settings.esl_host, settings.esl_port,
                                settings.esl_password.get_secret_value(), EVENTS,
                                self._on_event, timeout=settings.timeout)
        self._waiting: dict[str, asyncio.Future[Event]] = {}
        self._late: OrderedDict[str, Event] = OrderedDict()

    def start(self) -> None:
        self.client.start()

    async def close(self) -> None:
        await self.client.close()

    def expect(self, token: str) -> asyncio.Future[Event]:
        """A future for the report of the attempt `token`; `forget` it when done."""
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        return future

    def forget(self, token: str) -> None:
        self._waiting.pop(token, None)

    def late_success(self, message_id: str) -> Event | None:
        """A `Success` report for `message_id` that came after its send gave up."""
        return self._late.pop(message_id, None)

    def _on_event(self, event: Event) -> None:
        if event.subclass == REPORT:
            self._report(event)
        elif event.name == "MESSAGE":
            self.on_message(event)
        elif event.subclass == "sofia::error":
            log.info("FreeSWITCH: %s error: %s (to %s)", event.get("Error-Type", "?"),
                     event.get("Error-Reason", "?"), event.get("chat_to", "?"))

    def _report(self, event: Event) -> None:
        token = event.get(ATTEMPT_HEADER)
        future = self._waiting.pop(token, None) if token else None
        if future is not None and not future.done():
            future.set_result(event)
            return
        message_id = event.get(ID_HEADER)
        if message_id is None:
            return  # another application's SMS
        log.info("a delivery report for %s came after its send gave up: %s %s", message_id,
                 event.get("Status"), event.get("Delivery-Result-Code", ""),
                 extra={"msg_id": message_id})
        if event.get("Status") == "Success":
            self._late[message_id] = event
            while len(self._late) > LATE_KEPT:
                self._late.popitem(last=False)
