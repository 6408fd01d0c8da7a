"""`make bench`: throughput, latency and memory of a real `pbxsms serve` (see docs/performance.md).

Every figure comes from one run: the gateway, its embedded NATS, the simulators and the
load generators each run in their own process, and ratios compare loads run back to back.
"""
