"""Health of a running gateway: /healthz, /readyz, /metrics and `pbxsms doctor`."""
