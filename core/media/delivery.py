"""What the delivery channels need of a message's media: links to give out, and a line
saying what could not be fetched."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pbxsms.core.media.links import link_secret, media_url
from pbxsms.core.media.settings import MediaSettings
from pbxsms.core.model.events import InboundMessage, MediaItem
from pbxsms.core.registry import SendResult, no_media_links

if TYPE_CHECKING:
    from pbxsms.core.serve.runtime import Runtime


class NoLinks(Exception):
    """Links cannot be made: the setting that is missing."""


async def signed_link(runtime: Runtime, item: MediaItem) -> str:
    """A link to `item` under PBXSMS_PUBLIC_URL, valid PBXSMS_MEDIA_LINK_TTL; NoLinks."""
    config = runtime.config
    settings = config.plugin("media", MediaSettings)
    if not config.core.public_url:
        raise NoLinks("PBXSMS_PUBLIC_URL unset")
    return media_url(config.core.public_url, await link_secret(runtime), item.id,
                     settings.link_ttl)


def refused_note(message: InboundMessage) -> str | None:
    """`(2 attachments could not be fetched)`, for the person reading it; None if none."""
    count = len(message.media_refused)
    if not count:
        return None
    return f"({count} attachment{'s' if count > 1 else ''} could not be fetched)"


async def carrier_links(runtime: Runtime, media: Sequence[MediaItem],
                        provider: str) -> list[str] | SendResult:
    """A signed link per picture, for a carrier that fetches an MMS's pictures from
    pbxsms; when links cannot be made, the verdict refusing the message whole
    (`no_media_links`)."""
    try:
        return [await signed_link(runtime, item) for item in media]
    except NoLinks as error:
        return no_media_links(provider, str(error))
