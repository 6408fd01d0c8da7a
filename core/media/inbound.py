"""The `fetch-media` consumer: the media links of an inbound MMS, fetched after the webhook.

The webhook stores the message with its `media_urls` on a subject of its own
(`sms.inbound.<provider>.mms`, core/inbound/subjects.py) and answers at once; this durable
consumer, which reads only those subjects, fetches each link under its provider's
policy, stores the bytes in the Object Store, and publishes the message again, complete, on
`sms.inbound.<provider>.media` (deduplicated per message): `media` holds what was stored,
`media_refused` what was not, with the reason. The delivery channels wait for that event
and skip the first one. A link that fails for now (timeout, 5xx) is tried again with
backoff up to PBXSMS_MEDIA_FETCH_ATTEMPTS times; then it is refused and the message goes
on without it, so no text waits for a picture for ever. The outcome is a status event of
the channel `media`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pbxsms.bus.consumer import Delivery, Retry
from pbxsms.bus.publish import PublishError
from pbxsms.core.inbound.delivery import read_inbound, report
from pbxsms.core.inbound.subjects import follow_up_subject
from pbxsms.core.media.fetch import (
    FetchFailed,
    FetchRefused,
    Limits,
    MediaFetcher,
    describe,
)
from pbxsms.core.media.settings import MediaSettings
from pbxsms.core.media.store import media_store
from pbxsms.core.media.types import ALLOWED_TYPES
from pbxsms.core.model.events import InboundMessage, MediaItem, MediaRefusal, State

if TYPE_CHECKING:
    from pbxsms.core.serve.runtime import Runtime

log = logging.getLogger("pbxsms.media")

CONSUMER = "fetch-media"
CHANNEL = "media"
# Far above PBXSMS_MEDIA_FETCH_ATTEMPTS: the handler itself ends every message with its
# follow-up, so the runner's dead letter (which would hold the text back) is not reached.
MAX_DELIVER = 1000


def awaiting_media(message: InboundMessage) -> bool:
    """Whether a channel should wait for this message's `.media` follow-up."""
    return bool(message.media_urls)


def limits(settings: MediaSettings) -> Limits:
    """The caps of one fetch, from the settings."""
    return Limits(max_bytes=settings.max_bytes, content_types=ALLOWED_TYPES,
                  total_timeout=settings.fetch_timeout)


class MediaConsumer:
    """Consumer handler for `MMS_SUBJECTS`."""

    def __init__(self, runtime: Runtime, fetcher: MediaFetcher | None = None) -> None:
        self.runtime = runtime
        self.fetcher = fetcher or MediaFetcher()

    async def handle(self, delivery: Delivery) -> None:
        message = read_inbound(delivery)
        if not message.media_urls or message.route is None:
            return  # nothing to fetch, or nobody to give it to (unroutable)
        settings = self.runtime.config.plugin(CHANNEL, MediaSettings)
        policy = self.runtime.plugins.media_policy(self.runtime.config, message.provider)
        give_up = delivery.attempt >= settings.fetch_attempts
        stored: list[MediaItem] = []
        refused: list[MediaRefusal] = []
        waiting: list[str] = []
        for index, url in enumerate(message.media_urls):
            source = describe(url)
            if index >= settings.max_items:
                refused.append(MediaRefusal(source=source, reason=(
                    f"more than {settings.max_items} items (PBXSMS_MEDIA_MAX_ITEMS)")))
                continue
            if policy is None:
                refused.append(MediaRefusal(source=source, reason=(
                    f"provider {message.provider} allows no media host")))
                continue
            try:
                fetched = await self.fetcher.fetch(url, policy, limits(settings))
            except FetchRefused as error:
                refused.append(MediaRefusal(source=source, reason=error.reason))
                continue
            except FetchFailed as error:
                if give_up:
                    refused.append(MediaRefusal(source=source, reason=(
                        f"unavailable after {delivery.attempt} attempts: {error.reason}")))
                else:
                    waiting.append(f"{source}: {error.reason}")
                continue
            stored.append(await media_store(self.runtime).put(fetched.data,
                                                              fetched.content_type))
        if waiting:
            # Retry the whole message (stored items are fetched again; the unused copies
            # expire with the bucket). The text waits for at most the attempts' backoff.
            reason = "; ".join(waiting)
            await report(self.runtime, message, CHANNEL, State.RETRYING, delivery.attempt,
                         reason)
            raise Retry(reason)
        await self._complete(message, stored, refused, delivery.attempt)

    async def _complete(self, message: InboundMessage, stored: list[MediaItem],
                        refused: list[MediaRefusal], attempt: int) -> None:
        complete = message.model_copy(update={"media_urls": [], "media": stored,
                                              "media_refused": refused})
        try:
            await self.runtime.publish(follow_up_subject(message.provider), complete,
                                       f"media:{message.id}")
        except PublishError as error:
            raise Retry(f"media follow-up not stored: {error}") from error
        details = {"stored": len(stored), "refused": [r.model_dump() for r in refused]}
        if refused:
            reason = "; ".join(f"{r.source}: {r.reason}" for r in refused)
            log.warning("media of %s: %d stored, %d refused: %s", message.id, len(stored),
                        len(refused), reason, extra={"msg_id": message.id})
            await report(self.runtime, message, CHANNEL, State.FAILED, attempt, reason,
                         details=details)
        else:
            log.info("media of %s: %d stored", message.id, len(stored),
                     extra={"msg_id": message.id})
            await report(self.runtime, message, CHANNEL, State.DELIVERED, attempt,
                         details=details)
