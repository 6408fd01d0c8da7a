"""What the gateway talks about: events on the bus, phone numbers, segments, number settings."""
