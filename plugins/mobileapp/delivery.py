"""The `deliver-mobileapp` consumer: each inbound SMS into the extension's app inbox, once."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pbxsms.bus.consumer import Delivery, Permanent, Retry
from pbxsms.core.deliveries import Ledger, Settled, read_inbound, report, report_failure
from pbxsms.core.events import InboundMessage, Route, State
from pbxsms.plugins.mobileapp.client import push_message
from pbxsms.plugins.mobileapp.settings import MobileAppSettings

if TYPE_CHECKING:
    from pbxsms.core.runtime import Runtime

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
        settings: MobileAppSettings = self.runtime.config.plugin("mobileapp")
        route = message.route
        if route is None:
            return  # unroutable: its `unroutable` status already accounts for it
        if not route.extension:
            await report(self.runtime, message, CHANNEL, State.SKIPPED, delivery.attempt,
                         f"no extension in the message settings of {message.to}")
            return
        if not settings.api_url or settings.api_token is None:
            await report(self.runtime, message, CHANNEL, State.SKIPPED, delivery.attempt,
                         "RINGOTEL_API_URL or RINGOTEL_API_TOKEN unset")
            return
        org = route.mobileapp_org or settings.org_id
        if not org:
            failure = Permanent(f"no app organisation for {route.number}: set its "
                                "mobileapp_org, or RINGOTEL_ORG_ID")
            await report_failure(self.runtime, message, CHANNEL, delivery, failure)

        settled = await self.ledger.get(CHANNEL, message.id)
        if settled is None:
            try:
                messageid = await push_message(self.runtime.http, settings, org,
                                               message.from_, route.extension, message.body)
            except (Retry, Permanent) as failure:
                await report_failure(self.runtime, message, CHANNEL, delivery, failure)
            settled = Settled(state="delivered", attempt=delivery.attempt,
                              provider_message_id=messageid)
            await self.ledger.settle(CHANNEL, message.id, settled)
            log.info("pushed %s to extension %s (app message %s)", message.id,
                     route.extension, messageid, extra={"msg_id": message.id})
        else:
            log.info("%s already pushed (attempt %d): not again", message.id, settled.attempt,
                     extra={"msg_id": message.id})
        await self._finish(message, route, org, settled)

    async def _finish(self, message: InboundMessage, route: Route, org: str,
                      settled: Settled) -> None:
        """What follows a push; repeated as a whole when an attempt stops half-way."""
        assert route.extension is not None and settled.provider_message_id is not None
        # Known before the status is folded, so the app's `delivered` notice finds us.
        await self.runtime.status.remember_provider_id(CHANNEL, settled.provider_message_id,
                                                       message.id)
        await report(self.runtime, message, CHANNEL, State.DELIVERED, settled.attempt,
                     provider_message_id=settled.provider_message_id)
