"""Refusing replayed webhooks: a signed request seen (and stored) once is not taken again.

A carrier that signs a timestamp with the body (Telnyx) lets a captured request be sent
again inside its time window with a valid signature. The dedupe keys already keep such a
replay from becoming a second event; this guard also refuses it outright, so a replay is
visible (a refusal, counted) instead of a quiet duplicate. Only requests that were stored
are remembered: a carrier's own retry of a request answered 503 must still get through.
Per process: across instances the dedupe keys remain the backstop.
"""

from __future__ import annotations

import time
from collections import OrderedDict

# Enough for a busy window; beyond it the oldest are forgotten (dedupe still holds).
MAX_REMEMBERED = 100_000


class ReplayGuard:
    """Signatures (or any unique request marks) seen within `window` seconds."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._seen: OrderedDict[str, float] = OrderedDict()

    def seen(self, mark: str) -> bool:
        """Whether `mark` was remembered less than `window` seconds ago."""
        self._expire()
        return mark in self._seen

    def remember(self, mark: str) -> None:
        self._seen[mark] = time.monotonic() + self.window
        self._seen.move_to_end(mark)
        self._expire()

    def _expire(self) -> None:
        now = time.monotonic()
        while self._seen:
            until = next(iter(self._seen.values()))
            if until > now and len(self._seen) <= MAX_REMEMBERED:
                break
            self._seen.popitem(last=False)
