"""The subject an inbound message is stored on. The few that a core consumer acts on (an
MMS whose media are to be fetched, an opt-out keyword) go to subjects of their own, which
those consumers filter on, so that most texts never reach them; all are under
`sms.inbound.>`, which the delivery channels read.

- `sms.inbound.<provider>`: a text that is neither
- `sms.inbound.<provider>.mms`: media links to fetch (`fetch-media`)
- `sms.inbound.<provider>.keyword`: exactly an opt-out keyword (`optout`)
- `sms.inbound.<provider>.keyword.mms`: both (both consumers)
- `sms.inbound.<provider>.media`: an MMS again with its media fetched (the follow-up)
"""

from __future__ import annotations

from pbxsms.core.model.events import InboundMessage
from pbxsms.core.optout.keywords import keyword_of

# What `fetch-media` and `optout` read.
MMS_SUBJECTS = ("sms.inbound.*.mms", "sms.inbound.*.keyword.mms")
KEYWORD_SUBJECTS = ("sms.inbound.*.keyword", "sms.inbound.*.keyword.mms")


def inbound_subject(message: InboundMessage) -> str:
    """Where `message` as received is stored: decided by its content alone, so that a
    retry, a redelivery or a repeat of it goes where the first went."""
    subject = f"sms.inbound.{message.provider}"
    if keyword_of(message.body) is not None:
        subject += ".keyword"
    if message.media_urls:
        subject += ".mms"
    return subject


def follow_up_subject(provider: str) -> str:
    """Where an MMS is stored again once its media are fetched."""
    return f"sms.inbound.{provider}.media"
