"""Email: a read-only copy of inbound SMS to the number's addresses."""
