"""State kept in the bus's KV buckets: message status, numbers, conversations."""
