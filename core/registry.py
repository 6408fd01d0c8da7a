"""What plugins register: HTTP routes, durable consumers and SMS providers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from aiohttp import web

from pbxsms.bus.consumer import Handler
from pbxsms.core.model.events import MediaItem

RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RouteRegister(Protocol):
    """`register(method, path, handler)` from the `register_routes` hook."""

    def __call__(self, method: str, path: str, handler: RouteHandler) -> None: ...


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer: its name, what it reads, and the handler per message.

    Retry policy defaults come from `[bus]`; a spec may override `max_deliver` and
    `max_in_flight` (a batching consumer needs a whole batch in flight at once). `close`,
    when given, is awaited once the runtime has stopped its consumers (e.g. to close the
    connections the handler keeps), so no plugin needs a registry to find it at shutdown.
    `from_start`: when the durable consumer is first created it reads every event the
    stream still holds, not only new ones (a read model built from history).
    """

    name: str
    subject: str
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
# the carrier: permanent, and shown on the failed status beside the carrier's code.
OPTED_OUT = "opted_out"


def opted_out(code: str, reason: str) -> SendResult:
    """The verdict on a message the carrier refused because its recipient opted out."""
    return SendResult(Outcome.FAILED, code=code, reason=reason, details={OPTED_OUT: True})


class Provider(Protocol):
    """An SMS provider as the outbound dispatcher sees it.

    The dispatcher collects messages per provider and calls `send_batch` with at most
    `max_batch` of them, waiting up to `flush_delay` seconds for a batch to fill. The
    provider answers one SendResult per message, in order, and never raises for a failed
    send: every failure is an outcome. `retry_ambiguous` says whether an AMBIGUOUS result
    is sent again (at-least-once) or marked `unknown`. Read settings per call: they are
    replaced on reload.
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
