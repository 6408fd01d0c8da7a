"""The operations tests reuse the delivery tests' app simulator and SMTP server."""

from tests.delivery.conftest import app, smtp

__all__ = ["app", "smtp"]
