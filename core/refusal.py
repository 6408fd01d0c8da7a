"""`Refusal`: the one exception that answers a request with an error status.

A leaf module (it imports nothing of pbxsms) so that model code may raise it too. The
HTTP error middleware (core/serve/app.py) turns it into the one JSON error shape,
`{"error": message, "field": field}`.
"""

from __future__ import annotations

from collections.abc import Mapping


class Refusal(Exception):
    """Refuse a request: the HTTP status, why, and which field (when one is to blame).

    `headers` go out with the answer (e.g. `WWW-Authenticate`, `Retry-After`).
    """

    def __init__(self, status: int, message: str, field: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = dict(headers) if headers else None
