"""The `deliver-mobileapp` consumer: each inbound SMS into the extension's app inbox, once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

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
    write_all,
)
from pbxsms.plugins.mobileapp.client import push_message
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

        settled = await self.ledger.get(CHANNEL, message.id)
        if settled is None:
            try:
                messageid = await push_message(self.runtime.http, settings, org,
                                               message.from_, route.extension, message.body)
            except (Retry, Permanent) as failure:
                await fail_delivery(self.runtime, message, CHANNEL, delivery, failure)
            settled = Settled(state="delivered", attempt=delivery.attempt,
                              provider_message_id=messageid)
            log.info("pushed %s to extension %s (app message %s)", message.id,
                     route.extension, messageid, extra={"msg_id": message.id})
            # The ledger record and what follows are independent writes: one round
            # trip. The message is acknowledged only once all of them are stored.
            await write_all(self.ledger.settle(CHANNEL, message.id, settled),
                            *self._finish(message, settled, delivery.stream_seq))
        else:
            log.info("%s already pushed (attempt %d): not again", message.id, settled.attempt,
                     extra={"msg_id": message.id})
            await write_all(*self._finish(message, settled, delivery.stream_seq))

    def _finish(self, message: InboundMessage, settled: Settled,
                stream_seq: int) -> list[Awaitable[object]]:
        """What follows a push; repeated as a whole when an attempt stops half-way."""
        assert settled.provider_message_id is not None
        return [
            # Stored by the time the status is folded (the fold stores it too), so the
            # app's `delivered` notice finds us.
            self.runtime.status.remember_provider_id(CHANNEL, settled.provider_message_id,
                                                     message.id),
            report(self.runtime, message, CHANNEL, State.DELIVERED, settled.attempt,
                   provider_message_id=settled.provider_message_id, stream_seq=stream_seq)]
