"""Bandwidth (Messaging API v2): inbound callbacks, receipts and outbound sending."""
