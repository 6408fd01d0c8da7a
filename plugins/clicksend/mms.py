"""ClickSend MMS, inbound side: which links of a webhook are its media, and where they may
be fetched from.

ClickSend documents no MMS field: inbound MMS "shares the same rules/settings/endpoints as
SMS", the attachments "converted to a URL" (signed S3 links that expire after 7 days).
A link in the text is taken as media only when its host is on CLICKSEND_MEDIA_HOSTS (or is
the simulator's origin), so a customer's text that merely contains a link stays text; the
rest of the text is the caption and the whole original text is kept in `extra`. Links in
explicit media fields (`_media_file_url`, `media_file`, `media_url`, `media`) are media
whatever their host: the fetcher then refuses a host off the list, with the reason.
"""

from __future__ import annotations

import re

from yarl import URL

from pbxsms.core.plugin_api import FetchPolicy, InboundMessage
from pbxsms.plugins.clicksend.settings import ClickSendSettings

MEDIA_FIELDS = ("_media_file_url", "media_file", "media_url", "media")
_LINK = re.compile(r"https?://[^\s<>\"']+")
# A SMIL file describes the slide show, it is not media.
_SKIPPED = (".smil",)


def media_policy(settings: ClickSendSettings) -> FetchPolicy:
    return FetchPolicy(hosts=tuple(settings.media_hosts), simulator=settings.media_simulator)


def attach_media(message: InboundMessage, fields: dict[str, object],
                 settings: ClickSendSettings) -> None:
    """Move the media links of `fields` and of the text into `message.media_urls`."""
    found: list[str] = []
    for name in MEDIA_FIELDS:
        value = fields.get(name)
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        found.extend(v.strip() for v in values if isinstance(v, str) and v.strip())
    if not found and "http" not in message.body:  # a plain text: nothing to look for
        return
    policy = media_policy(settings)
    caption = message.body
    for link in _LINK.findall(message.body):
        if _is_media(link, policy):
            found.append(link)
            caption = caption.replace(link, "")
    found = [link for link in dict.fromkeys(found)
             if not URL(link).path.lower().endswith(_SKIPPED)]
    if not found:
        return
    if caption != message.body:
        message.extra["text_with_links"] = message.body
        message.body = "\n".join(line.strip() for line in caption.splitlines()
                                 if line.strip())
    message.media_urls = found


def _is_media(link: str, policy: FetchPolicy) -> bool:
    try:
        url = URL(link)
    except ValueError:
        return False
    return policy.is_simulator(url) or (url.scheme == "https"
                                        and policy.host_allowed(url.host or ""))
