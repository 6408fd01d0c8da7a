"""The events on the bus: versioned JSON (pydantic v2), each carrying our message id.

Other PBX services build on these; `pbxsms schema` prints their JSON Schemas and
docs/events.md documents them. Add fields freely; rename or remove only with a new
`schema` version.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# 2: MMS media (`media`, `media_urls`, `media_refused`, `subject`).
# 3: an inbound sender may be a short code or a name (`sender_type`), not only E.164.
# 4: an inbound MMS and an opt-out keyword are stored on subjects of their own
#    (`sms.inbound.<provider>.mms`, `.keyword`, `.keyword.mms`; core/inbound/subjects.py).
SCHEMA_VERSION = 4


# What an inbound sender is (core/model/phone.py tells them apart).
SenderType = Literal["e164", "short_code", "alphanumeric"]


def new_id() -> str:
    """A new message id (UUID4, lower case): the key of a message everywhere."""
    return uuid_text(os.urandom(16), 4)


def uuid_text(raw: bytes, version: int) -> str:
    """`str(uuid.UUID(bytes=raw[:16], version=version))`, at a third of its cost (one or
    two on every message)."""
    octets = bytearray(raw[:16])
    octets[6] = (octets[6] & 0x0F) | (version << 4)
    octets[8] = (octets[8] & 0x3F) | 0x80  # the RFC 4122 variant
    text = octets.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Common envelope: schema version and our message id."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    schema_version: int = Field(SCHEMA_VERSION, alias="schema",
                                description="Version of this event's shape")
    id: str = Field(default_factory=new_id, description="Our message id (UUID)")

    def to_json(self) -> bytes:
        """`model_dump_json(by_alias=True, exclude_none=True)` as bytes, straight from the
        model's serializer (model_dump_json decodes them to a str, which was encoded again)."""
        return self.__pydantic_serializer__.to_json(self, by_alias=True, exclude_none=True)


class Route(BaseModel):
    """Where an inbound message goes: the message settings of the number it was sent to."""

    # Frozen: one Route serves every message to its number (NumberStore.route_inbound).
    model_config = ConfigDict(frozen=True)

    number: str
    provider: str
    extension: str | None = None
    domain: str | None = None
    email: list[str] = Field(default_factory=list)
    mobileapp_org: str | None = None


class MediaItem(BaseModel):
    """One stored media item (a picture, ...): its bytes are in the Object Store under `id`."""

    id: str = Field(description="Object name in the media bucket; unguessable")
    content_type: str = Field(description="Checked against the bytes, e.g. image/jpeg")
    size: int = Field(description="Bytes")
    sha256: str = Field(description="Hex digest of the bytes")


class MediaRefusal(BaseModel):
    """A media item that was not stored, and why."""

    source: str = Field(description="Where it was to come from: scheme and host only")
    reason: str


class InboundMessage(Event):
    """`sms.inbound.<provider>` (and `.mms`, `.keyword`, `.keyword.mms`, `.media`): a
    customer's SMS accepted from a provider."""

    provider: str = Field(description="Provider plugin that received it, e.g. clicksend")
    provider_message_id: str | None = Field(None, description="The provider's id, if any")
    from_: str = Field(alias="from", description="Sender (the customer): E.164, or the "
                       "short code or name exactly as sent (see `sender_type`)")
    sender_type: SenderType = Field(
        "e164", description="What `from` is: e164, short_code or alphanumeric (a name, "
                            "which cannot receive texts)")
    to: str = Field(description="Our number that received it, E.164")
    body: str = Field(description="Text of the message")
    received_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = Field(None, description="Provider's timestamp, when given")
    reply_to_provider_id: str | None = Field(
        None, description="Provider id of our outbound message this replies to")
    reply_to_id: str | None = Field(None, description="Our id of the message replied to")
    route: Route | None = Field(None, description="Message settings of `to`, when known")
    extra: dict[str, str] = Field(default_factory=dict,
                                  description="Other provider fields (account ids)")
    media_urls: list[str] = Field(
        default_factory=list, description="Media links the provider reported, not fetched "
        "yet (stored on `sms.inbound.<provider>.mms`): the channels wait for "
        "`sms.inbound.<provider>.media`")
    media: list[MediaItem] = Field(default_factory=list, description="Stored media")
    media_refused: list[MediaRefusal] = Field(
        default_factory=list, description="Media that could not be stored, with the reason")


class OutboundRequest(Event):
    """`sms.outbound`: someone asks to send an SMS."""

    from_: str | None = Field(None, alias="from",
                              description="Our number to send from, E.164")
    extension: str | None = Field(
        None, description="Send on behalf of this extension when `from` is not given")
    to: str = Field(description="Recipient, E.164")
    body: str
    provider: str | None = Field(None, description="Forces a provider; else the number's")
    source: str = Field("api", description="Who asked: api, mobileapp, a service name")
    requested_at: datetime = Field(default_factory=utcnow)
    in_reply_to: str | None = Field(None, description="Our id of the inbound message")
    mobileapp_org: str | None = Field(
        None, description="App organisation of `extension`, for replies from the mobile app")
    resend_of: str | None = Field(
        None, description="Our id of the failed send this one sends again (an operator's "
                          "resend)")
    media: list[MediaItem] = Field(default_factory=list,
                                   description="Stored media to send (MMS)")
    media_urls: list[str] = Field(
        default_factory=list, description="Media to fetch (safely) and send (MMS)")
    subject: str | None = Field(None, description="MMS subject; else the provider's setting")

    @property
    def is_mms(self) -> bool:
        return bool(self.media or self.media_urls)


class State(StrEnum):
    """A message's state; per channel for inbound deliveries."""

    QUEUED = "queued"
    SENDING = "sending"
    ACCEPTED = "accepted"
    SENT = "sent"
    DELIVERED = "delivered"
    RETRYING = "retrying"
    FAILED = "failed"
    UNKNOWN = "unknown"
    UNROUTABLE = "unroutable"
    SKIPPED = "skipped"

    @property
    def final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset({State.DELIVERED, State.FAILED, State.UNROUTABLE, State.SKIPPED})


class StatusEvent(Event):
    """`sms.status.<id>`: a message (or one channel of its delivery) changed state."""

    direction: Literal["inbound", "outbound"]
    state: State
    channel: str | None = Field(None, description="provider, mobileapp, email, ...")
    reason: str | None = None
    attempt: int | None = None
    provider_message_id: str | None = None
    error_code: str | None = None
    segments: int | None = None
    sender_type: SenderType | None = Field(
        None, description="Inbound: what the sender is (e164, short_code, alphanumeric)")
    domain: str | None = Field(None, description="Tenant (PBX domain) of our number")
    at: datetime = Field(default_factory=utcnow)
    details: dict[str, Any] = Field(default_factory=dict)
    stream_seq: int | None = Field(
        None, description="Sequence of the message's own event (sms.inbound.<provider> or "
                          "sms.outbound) in the stream, when the publisher knows it")
    redelivery: int | None = Field(
        None, description="An operator's redelivery of an inbound message (1, 2, ...): its "
                          "channels start over; earlier channel states stay in the history")
    key: str | None = Field(
        None, description="The deduplication key (`Nats-Msg-Id`) it was published under: "
                          "a repeat of the same change carries the same key")


class OptOutEvent(Event):
    """`sms.optout`: a customer opted out of texts from one of our numbers, or back in."""

    number: str = Field(description="Our number, E.164")
    customer: str = Field(description="The customer, as in `from` of their texts")
    opted_out: bool = Field(description="true: STOP (sends refused); false: START")
    source: Literal["keyword", "carrier"] = Field(
        description="keyword: the customer texted it; carrier: a send was refused as "
                    "opted out by the carrier")
    keyword: str | None = Field(None, description="The text, for a keyword (e.g. STOP)")
    provider: str | None = Field(None, description="Provider that received or refused it")
    at: datetime = Field(default_factory=utcnow, description="When it was said")


class DeadLetter(Event):
    """`sms.dead.<consumer>`: a consumer gave up on an event after its last attempt."""

    consumer: str
    subject: str = Field(description="Subject of the original event")
    stream_seq: int = Field(description="Sequence of the original in the stream")
    attempts: int
    reason: str
    original: Any = Field(description="The original event (JSON), or its text")
    at: datetime = Field(default_factory=utcnow)


EVENT_MODELS: dict[str, type[Event]] = {
    "sms.inbound.<provider>": InboundMessage,
    "sms.inbound.<provider>.mms": InboundMessage,
    "sms.inbound.<provider>.keyword": InboundMessage,
    "sms.inbound.<provider>.keyword.mms": InboundMessage,
    "sms.inbound.<provider>.media": InboundMessage,
    "sms.outbound": OutboundRequest,
    "sms.status.<id>": StatusEvent,
    "sms.dead.<consumer>": DeadLetter,
    "sms.optout": OptOutEvent,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of each event, keyed by subject."""
    return {subject: model.model_json_schema(by_alias=True)
            for subject, model in EVENT_MODELS.items()}
