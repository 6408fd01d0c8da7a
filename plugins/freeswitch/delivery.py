"""The `deliver-freeswitch` consumer: each inbound SMS onto the extension's SIP phones, once.

Only numbers whose message settings say `sip = true` are delivered; others are not this
channel's business (no status). Per attempt: is the extension registered
(`sofia_contact`)? Then `sendevent CUSTOM SMS::SEND_MESSAGE` (blocking, so FreeSWITCH
waits for the phone's SIP answer) and wait for mod_sms's `SMS::DELIVERY_REPORT`.
Not registered, a SIP failure, no report in time or FreeSWITCH away: retried with backoff
until `FREESWITCH_RETRY_FOR` after the message arrived, then dead-lettered with the last
reason. The app and email channels are separate consumers: nothing here holds them back.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import NoReturn

from pbxsms.core.plugin_api import (
    Delivery,
    InboundMessage,
    Ledger,
    Permanent,
    Retry,
    Runtime,
    Settled,
    State,
    fail_delivery,
    read_inbound,
    report,
    utcnow,
)
from pbxsms.plugins.freeswitch.esl import CommandFailed, EslClosed, EslError, Event
from pbxsms.plugins.freeswitch.link import ATTEMPT_HEADER, ID_HEADER, FreeSwitchLink
from pbxsms.plugins.freeswitch.settings import FreeSwitchSettings

log = logging.getLogger("pbxsms.freeswitch")

CHANNEL = "freeswitch"
CONSUMER = "deliver-freeswitch"
# Attempts are bounded by time (FREESWITCH_RETRY_FOR), not by [bus] max_deliver.
MAX_ATTEMPTS = 100_000

SIP_REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found",
               408: "Request Timeout", 410: "Gone", 415: "Unsupported Media Type",
               480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
               486: "Busy Here", 488: "Not Acceptable Here", 500: "Server Internal Error",
               503: "Service Unavailable", 504: "Server Time-out", 603: "Decline"}


class SipDelivery:
    """Consumer handler for `sms.inbound.>`."""

    def __init__(self, runtime: Runtime, link: Callable[[], FreeSwitchLink | None]) -> None:
        self.runtime = runtime
        self.link = link
        self.ledger = Ledger(runtime)

    async def handle(self, delivery: Delivery) -> None:
        message = read_inbound(delivery)
        route = message.route
        if route is None:
            return  # unroutable: its `unroutable` status already accounts for it
        record = self.runtime.numbers.get(route.number)
        if record is None or not record.sip:
            return  # the channel is off for this number (read now: turning it off stops)
        settings = self.runtime.config.plugin("freeswitch", FreeSwitchSettings)
        if not route.extension:
            await report(self.runtime, message, CHANNEL, State.SKIPPED, delivery.attempt,
                         f"no extension in the message settings of {message.to}")
            return
        if settings.esl_password is None:
            await report(self.runtime, message, CHANNEL, State.SKIPPED, delivery.attempt,
                         "FREESWITCH_ESL_PASSWORD unset")
            return
        domain = route.domain or settings.domain
        if not domain:
            await fail_delivery(self.runtime, message, CHANNEL, delivery, Permanent(
                f"no SIP domain for {route.number}: set its domain, or FREESWITCH_DOMAIN"))
        user = f"{route.extension}@{domain}"

        settled = await self.ledger.get(CHANNEL, message.id, received_at=message.received_at)
        if settled is not None:
            log.info("%s already on the phones of %s (attempt %d): not again", message.id,
                     user, settled.attempt, extra={"msg_id": message.id})
            await self._finish(message, settled)
            return
        link = self.link()
        if link is None:
            await self._failed(message, delivery, settings,
                               Retry("the FreeSWITCH event socket is not started"))
        if link.late_success(message.id) is not None:
            # An earlier attempt did reach a phone; its report came after we stopped waiting.
            settled = Settled(state="delivered", attempt=delivery.attempt,
                              reason="confirmed by a late delivery report")
            log.info("%s on the phones of %s (a late report): not sent again", message.id,
                     user, extra={"msg_id": message.id})
        else:
            try:
                event_uuid = await self._send(link, delivery, message, user, settings)
            except (Retry, Permanent) as failure:
                await self._failed(message, delivery, settings, failure)
            settled = Settled(state="delivered", attempt=delivery.attempt,
                              provider_message_id=event_uuid)
            log.info("%s on the phones of %s", message.id, user, extra={"msg_id": message.id})
        await self._finish(message, settled)

    def _finish(self, message: InboundMessage, settled: Settled) -> Awaitable[None]:
        """The status with the ledger entry, in one write of the message's record."""
        return report(self.runtime, message, CHANNEL, State.DELIVERED, settled.attempt,
                      provider_message_id=settled.provider_message_id,
                      settled=self.ledger.entry(CHANNEL, message.id, settled))

    async def _failed(self, message: InboundMessage, delivery: Delivery,
                      settings: FreeSwitchSettings, failure: Retry | Permanent) -> NoReturn:
        """`retrying`, or the dead letter once the message waited `retry_for`."""
        if isinstance(failure, Retry):
            waited = (utcnow() - message.received_at).total_seconds()
            if waited >= settings.retry_for:
                failure = Permanent(f"{failure.reason} (still after "
                                    f"{_duration(settings.retry_for)}: FREESWITCH_RETRY_FOR)")
        await fail_delivery(self.runtime, message, CHANNEL, delivery, failure)

    async def _send(self, link: FreeSwitchLink, delivery: Delivery, message: InboundMessage,
                    user: str, settings: FreeSwitchSettings) -> str | None:
        """One attempt; the Event-UUID FreeSWITCH gave the send, or Retry/Permanent."""
        client = link.client
        if not await client.wait_connected(settings.timeout):
            raise Retry(f"FreeSWITCH event socket {client.where} unreachable: "
                        f"{client.last_error}")
        try:
            contact = (await client.api(f"sofia_contact {settings.sip_profile}/{user}")).strip()
        except EslError as error:
            raise Retry(f"FreeSWITCH event socket: {error}") from error
        if "user_not_registered" in contact:
            raise Retry(f"extension {user} has no registered SIP device")
        if contact.startswith(("error/", "-ERR")) or not contact:
            raise Retry(f"sofia_contact {settings.sip_profile}/{user}: {contact or 'no answer'}")

        token = uuid.uuid4().hex
        waiting = link.expect(token)
        deadline = time.monotonic() + settings.report_timeout
        event_uuid: str | None = None
        lost: str | None = None
        try:
            try:
                event_uuid = await client.sendevent(
                    "CUSTOM", _headers(message, user, settings, token), message.body)
            except ValueError as error:
                raise Permanent(f"cannot go over the event socket: {error}") from error
            except CommandFailed as error:
                raise Retry(str(error)) from error
            except (EslClosed, EslError) as error:
                # FreeSWITCH may have taken it: its report can still come on the next
                # connection, so keep waiting rather than send it twice.
                lost = str(error)
                log.warning("%s: %s; waiting for its report all the same", message.id,
                            error, extra={"msg_id": message.id})
            await delivery.in_progress()
            try:
                answer = await asyncio.wait_for(waiting, max(deadline - time.monotonic(), 0))
            except TimeoutError:
                # Wait as long again before sending anew: a late report then settles it.
                raise Retry(f"no delivery report from FreeSWITCH within "
                            f"{_duration(settings.report_timeout)}"
                            + (f" ({lost})" if lost else ""),
                            delay=settings.report_timeout) from None
        finally:
            link.forget(token)
        return _verdict(answer, event_uuid)


def _headers(message: InboundMessage, user: str, settings: FreeSwitchSettings,
             token: str) -> list[tuple[str, str]]:
    """SMS::SEND_MESSAGE's headers as sofia reads them: the customer is the sender."""
    extension, _, domain = user.partition("@")
    customer = message.from_
    return [("Event-Subclass", "SMS::SEND_MESSAGE"), ("proto", "sip"), ("dest_proto", "sip"),
            ("from", customer), ("from_user", customer), ("from_host", domain),
            ("from_full", f"sip:{customer}@{domain}"),
            ("to", user), ("to_user", extension), ("to_host", domain),
            ("sip_profile", settings.sip_profile), ("subject", "SMS"),
            ("type", "text/plain"), ("blocking", "true"),
            (ID_HEADER, message.id), (ATTEMPT_HEADER, token)]


def _verdict(answer: Event, event_uuid: str | None) -> str | None:
    """Success (or Accepted, the non-blocking case) returns; anything else is a Retry."""
    status = answer.get("Status") or ""
    if status in ("Success", "Accepted"):
        return event_uuid or answer.get("Event-UUID")
    code = answer.get("Delivery-Result-Code")
    if code and code.isdigit():
        raise Retry(f"SIP {code} {SIP_REASONS.get(int(code), '')}".rstrip()
                    + " from the extension's device")
    raise Retry(f"FreeSWITCH did not deliver it ({status or 'no Status'}: no registered "
                "device took it)")


def _duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
