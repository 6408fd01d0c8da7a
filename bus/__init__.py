"""pbxsms bus: the NATS JetStream side (embedded server, stream, publish, consumers)."""
