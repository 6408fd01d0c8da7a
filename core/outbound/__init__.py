"""Outbound: send requests, the dispatcher that batches them to providers, `pbxsms send`."""
