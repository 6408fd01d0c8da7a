"""Telnyx (Messaging v2): signed inbound webhooks, receipts and outbound sending."""
