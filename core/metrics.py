"""Prometheus metrics; docs/operations.md lists each with its labels."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

WEBHOOKS = Counter("pbxsms_webhooks_total", "Webhook requests by provider, kind and result",
                   ["provider", "kind", "result"])
EVENTS_PUBLISHED = Counter("pbxsms_events_published_total",
                           "Events stored on JetStream, by subject family and duplicate flag",
                           ["subject", "duplicate"])
PUBLISH_FAILURES = Counter("pbxsms_publish_failures_total",
                           "Events that could not be stored (the caller was told)", ["subject"])
CONSUMER_OUTCOMES = Counter("pbxsms_consumer_outcomes_total",
                            "Handled deliveries per consumer: ack, retry or dead",
                            ["consumer", "outcome"])
DEAD_LETTERS = Counter("pbxsms_dead_letters_total", "Events given up on, per consumer",
                       ["consumer"])
CONSUMER_IN_FLIGHT = Gauge("pbxsms_consumer_in_flight", "Deliveries being handled now",
                           ["consumer"])
HTTP_LATENCY = Histogram("pbxsms_http_request_seconds", "HTTP handling time by route",
                         ["route"], buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5,
                                             1, 2.5, 5))
DELIVERIES = Counter("pbxsms_deliveries_total",
                     "Inbound delivery attempts by channel (mobileapp, email) and outcome",
                     ["channel", "outcome"])
RELOADS = Counter("pbxsms_reloads_total", "Settings reloads by result", ["result"])


def subject_family(subject: str) -> str:
    """`sms.status.<id>` → `sms.status`: label values must stay few."""
    parts = subject.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 and parts[1] in ("status", "dead") else subject
UNROUTABLE = Counter("pbxsms_unroutable_total",
                     "Inbound messages stored without a route, by provider and cause "
                     "(invalid, unknown, disabled, provider)", ["provider", "cause"])
NUMBERS = Gauge("pbxsms_numbers", "Numbers with message settings, by enabled flag",
                ["enabled"])
