"""What plugins register: HTTP routes, durable consumers and SMS providers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from aiohttp import web

from pbxsms.bus.consumer import Handler
from pbxsms.bus.filters import Subjects
from pbxsms.core.model.events import MediaItem
from pbxsms.core.model.segments import STANDARD, Billing

RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RouteRegister(Protocol):
    """`register(method, path, handler)` from the `register_routes` hook."""

    def __call__(self, method: str, path: str, handler: RouteHandler) -> None: ...


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer: its name, what it reads, and the handler per message.

    `subject` is one subject filter or a tuple of several. A consumer that exists with
    other filters is brought to these on start, after it has read what its old filters
    matched (bus/consumer.py), so a plugin may narrow its filters in a new version.

    Retry policy defaults come from `[bus]`; a spec may override `max_deliver` and
    `max_in_flight` (a batching consumer needs a whole batch in flight at once). `close`,
    when given, is awaited once the runtime has stopped its consumers (e.g. to close the
    connections the handler keeps), so no plugin needs a registry to find it at shutdown.
    `from_start`: when the durable consumer is first created it reads every event the
    stream still holds, not only new ones (a read model built from history).
    """

    name: str
    subject: Subjects
    handler: Handler
    max_deliver: int | None = None
    max_in_flight: int | None = None
    close: Callable[[], Awaitable[None]] | None = None
    from_start: bool = False


class ConsumerRegister(Protocol):
    """`register(spec)` from the `register_consumers` hook."""

    def __call__(self, spec: ConsumerSpec) -> None: ...


@dataclass(frozen=True)
class OutboundMessage:
    """One SMS (or MMS, with `media` stored in the Object Store) as the dispatcher hands it
    to a provider: validated, numbers in E.164."""

    id: str
    from_: str
    to: str
    body: str
    segments: int
    media: tuple[MediaItem, ...] = ()
    subject: str | None = None


class Outcome(StrEnum):
    """How a provider judged one message of a batch."""

    ACCEPTED = "accepted"  # the provider took it; `provider_message_id` identifies it
    FAILED = "failed"  # refused for good (`code`); retrying cannot help
    RETRY = "retry"  # not taken, safe to send again after `retry_after` (None: backoff)
    AMBIGUOUS = "ambiguous"  # sent, but no usable answer: it may or may not go out
    PAUSED = "paused"  # the provider refuses our account (credentials): sending is paused


@dataclass(frozen=True)
class SendResult:
    """A provider's verdict on one message."""

    outcome: Outcome
    provider_message_id: str | None = None
    code: str | None = None
    reason: str | None = None
    retry_after: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


# `SendResult.details` key of a refusal because the recipient opted out (replied STOP) at
# the carrier: permanent, shown on the failed status beside the carrier's code, and
# recorded as an opt-out (`sms.optout`), so later sends to them are refused before any
# carrier call.
OPTED_OUT = "opted_out"


def opted_out(code: str, reason: str) -> SendResult:
    """The verdict on a message the carrier refused because its recipient opted out."""
    return SendResult(Outcome.FAILED, code=code, reason=reason, details={OPTED_OUT: True})


def no_media_links(provider: str, reason: str) -> SendResult:
    """The verdict on an MMS whose pictures the carrier would fetch from pbxsms's signed
    links when no link can be made (`reason`): refused whole, never sent as its text with
    the pictures dropped."""
    return SendResult(Outcome.FAILED, code="NO_MEDIA_LINKS",
                      reason=f"{provider} fetches MMS pictures from pbxsms: {reason}, so the "
                             "message and its pictures were not sent")



class Provider(Protocol):
    """An SMS provider as the outbound dispatcher sees it.

    The dispatcher collects messages per provider and calls `send_batch` with at most
    `max_batch` of them, waiting up to `flush_delay` seconds for a batch to fill. The
    provider answers one SendResult per message, in order, and never raises for a failed
    send: every failure is an outcome. `retry_ambiguous` says whether an AMBIGUOUS result
    is sent again (at-least-once) or marked `unknown`. Read settings per call: they are
    replaced on reload. A provider whose carrier bills parts its own way also has a
    `billing` attribute (`Billing`, see `billing_of`).
    """

    name: str

    @property
    def max_batch(self) -> int: ...

    @property
    def flush_delay(self) -> float: ...

    @property
    def retry_ambiguous(self) -> bool: ...

    async def send_batch(self, messages: Sequence[OutboundMessage]) -> Sequence[SendResult]: ...


class ProviderRegister(Protocol):
    """`register(provider)` from the `register_providers` hook."""

    def __call__(self, provider: Provider) -> None: ...


def billing_of(provider: Provider) -> Billing:
    """How `provider`'s carrier counts billed parts: its optional `billing` attribute, else
    the standard count."""
    billing = getattr(provider, "billing", STANDARD)
    return billing if isinstance(billing, Billing) else STANDARD
