"""The `deliver-mobileapp` consumer: each inbound SMS into the extension's app inbox, once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from pbxsms.core.plugin_api import (
    Delivery,
    InboundMessage,
    Ledger,
    NoLinks,
    Permanent,
    Retry,
    Runtime,
    Settled,
    State,
    awaiting_media,
    fail_delivery,
    read_inbound,
    refused_note,
    report,
    signed_link,
    write_all,
)
from pbxsms.plugins.mobileapp.client import MEDIA, TEXT, push_message
from pbxsms.plugins.mobileapp.settings import MobileAppSettings

log = logging.getLogger("pbxsms.mobileapp")

CHANNEL = "mobileapp"
CONSUMER = "deliver-mobileapp"


class MobileAppDelivery:
    """Consumer handler for `sms.inbound.>`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.ledger = Ledger(runtime)

    async def handle(self, delivery: Delivery) -> None:
        message = read_inbound(delivery)
        settings = self.runtime.config.plugin("mobileapp", MobileAppSettings)
        route = message.route
        if route is None:
            return  # unroutable: its `unroutable` status already accounts for it
        if awaiting_media(message):
            return  # delivered whole from its `.media` follow-up (core/media/inbound.py)
        if not route.extension:
            await report(self.runtime, message, CHANNEL, State.SKIPPED, delivery.attempt,
                         f"no extension in the message settings of {message.to}",
                         stream_seq=delivery.stream_seq)
            return
        if not settings.api_url or settings.api_token is None:
            await report(self.runtime, message, CHANNEL, State.SKIPPED, delivery.attempt,
                         "RINGOTEL_API_URL or RINGOTEL_API_TOKEN unset",
                         stream_seq=delivery.stream_seq)
            return
        org = route.mobileapp_org or settings.org_id
        if not org:
            failure = Permanent(f"no app organisation for {route.number}: set its "
                                "mobileapp_org, or RINGOTEL_ORG_ID")
            await fail_delivery(self.runtime, message, CHANNEL, delivery, failure)

        details: dict[str, object] = {}
        pushes = await self._pushes(message, details)
        ledger = await self.ledger.get_many(CHANNEL, message.id,
                                            [recipient for recipient, _, _ in pushes],
                                            message.received_at)
        for index, ((recipient, content, kind), settled) in enumerate(
                zip(pushes, ledger, strict=True)):
            last = index == len(pushes) - 1
            if settled is not None:
                log.info("%s already pushed (attempt %d): not again", message.id,
                         settled.attempt, extra={"msg_id": message.id})
                if last:
                    await write_all(*self._finish(message, recipient, settled, details,
                                                  delivery.stream_seq))
                continue
            try:
                messageid = await push_message(self.runtime.http, settings, org,
                                               message.from_, route.extension, content, kind)
            except (Retry, Permanent) as failure:
                await fail_delivery(self.runtime, message, CHANNEL, delivery, failure)
            settled = Settled(state="delivered", attempt=delivery.attempt,
                              provider_message_id=messageid)
            log.info("pushed %s to extension %s (app message %s)", message.id,
                     route.extension, messageid, extra={"msg_id": message.id})
            # The message is acknowledged only once all of these are stored.
            await write_all(*self._finish(message, recipient, settled,
                                          details if last else None, delivery.stream_seq))

    async def _pushes(self, message: InboundMessage, details: dict[str, object]
                ) -> list[tuple[str | None, str, int]]:
        """(ledger recipient, content, type) of each push: the text (under the message's
        own ledger key, as for an SMS), then one link per picture."""
        text = "\n".join(part for part in (message.body, refused_note(message)) if part)
        pushes: list[tuple[str | None, str, int]] = []
        for item in message.media:
            try:
                link = await signed_link(self.runtime, item)
            except NoLinks as error:
                details["media"] = f"{len(message.media)} not linked: {error}"
                text = "\n".join(part for part in (
                    text, f"({len(message.media)} attachment(s): see the email copy)") if part)
                pushes = []
                break
            pushes.append((f"media:{item.id}", link, MEDIA))
        first = [(None, text, TEXT)] if text or not pushes else []
        return [*first, *pushes]

    def _finish(self, message: InboundMessage, recipient: str | None, settled: Settled,
                details: dict[str, object] | None,
                stream_seq: int) -> list[Awaitable[object]]:
        """What follows a push: its ledger entry, with the status after the last one
        (`details` given) in one write of the record, and the app's message id beside
        it (one round trip); repeated as a whole when an attempt stops half-way."""
        assert settled.provider_message_id is not None
        if details is not None:
            # The fold of the `delivered` status stores the app's message id with the
            # record, in the same round trip, before the message is acknowledged: no
            # write (and task) of its own, so the app's `delivered` notice finds us.
            return [report(self.runtime, message, CHANNEL, State.DELIVERED, settled.attempt,
                           provider_message_id=settled.provider_message_id,
                           details=details, stream_seq=stream_seq,
                           settled=self.ledger.entry(CHANNEL, message.id, settled,
                                                     recipient))]
        return [self.runtime.status.remember_provider_id(
                    CHANNEL, settled.provider_message_id, message.id),
                self.ledger.settle(CHANNEL, message.id, settled, recipient)]
