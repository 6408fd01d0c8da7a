"""What plugins register: HTTP routes, durable consumers and SMS providers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from pbxsms.bus.consumer import Handler

Handler_ = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RouteRegister(Protocol):
    """`register(method, path, handler)` from the `register_routes` hook."""

    def __call__(self, method: str, path: str, handler: Handler_) -> None: ...


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer: its name, what it reads, and the handler per message.

    Retry policy defaults come from `[bus]`; a spec may override `max_deliver` and
    `max_in_flight` (a batching consumer needs a whole batch in flight at once).
    """

    name: str
    subject: str
    handler: Handler
    max_deliver: int | None = None
    max_in_flight: int | None = None


class ConsumerRegister(Protocol):
    """`register(spec)` from the `register_consumers` hook."""

    def __call__(self, spec: ConsumerSpec) -> None: ...


class Provider(Protocol):
    """An SMS provider as the outbound dispatcher sees it (extended by the outbound work)."""

    name: str

    async def send_batch(self, messages: Sequence[object]) -> Sequence[object]: ...


class ProviderRegister(Protocol):
    """`register(provider)` from the `register_providers` hook."""

    def __call__(self, provider: Provider) -> None: ...
