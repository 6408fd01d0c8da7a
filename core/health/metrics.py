"""Prometheus metrics; docs/operations.md lists each with its labels."""

from __future__ import annotations

import functools
from typing import TypeVar

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)

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
HTTP_LATENCY = Histogram("pbxsms_http_request_seconds", "HTTP handling time by route",
                         ["route"], buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5,
                                             1, 2.5, 5))
HTTP_CONNECTIONS_SHED = Counter("pbxsms_http_connections_shed_total",
                                "Connections closed at the [http] max_connections cap: "
                                "idle_closed (an idle one made room), refused (503)",
                                ["result"])
DELIVERIES = Counter("pbxsms_deliveries_total",
                     "Inbound delivery attempts by channel (mobileapp, email) and outcome",
                     ["channel", "outcome"])
DELIVERY_LATENCY = Histogram("pbxsms_webhook_to_delivery_seconds",
                             "Time from the webhook storing an inbound message to a person "
                             "receiving it, by channel", ["channel"],
                             buckets=(.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800))
CONSUMER_PENDING = Gauge("pbxsms_consumer_pending",
                         "Events not yet handed to a consumer (backlog), read at scrape",
                         ["consumer"])
CONSUMER_ACK_PENDING = Gauge("pbxsms_consumer_ack_pending",
                             "Events handed to a consumer and not yet settled, read at scrape",
                             ["consumer"])
RELOADS = Counter("pbxsms_reloads_total", "Settings reloads by result", ["result"])

# Outbound: what the dispatcher decided per message, and how provider calls went.
OUTBOUND = Counter("pbxsms_outbound_messages_total",
                   "Outbound messages by provider and outcome: accepted, failed, retrying, "
                   "unknown, unroutable, invalid, duplicate", ["provider", "outcome"])
OUTBOUND_FAILURES = Counter("pbxsms_outbound_failures_total",
                            "Outbound messages that failed for good, by provider and code",
                            ["provider", "code"])
PROVIDER_REQUESTS = Counter("pbxsms_provider_requests_total",
                            "Send calls to a provider by result: ok, rate_limited, "
                            "server_error, auth, client_error, not_sent, no_answer",
                            ["provider", "result"])
PROVIDER_BATCH_SIZE = Histogram("pbxsms_provider_batch_size", "Messages per provider send call",
                                ["provider"], buckets=(1, 5, 10, 50, 100, 250, 500, 1000))
PROVIDER_SECONDS = Histogram("pbxsms_provider_request_seconds", "Provider send call duration",
                             ["provider"], buckets=(.05, .1, .25, .5, 1, 2.5, 5, 10, 30))
PROVIDER_ACCOUNT_ERRORS = Counter("pbxsms_provider_account_errors_total",
                                  "Sends refused because of the provider account itself "
                                  "(e.g. INSUFFICIENT_CREDIT, UNAUTHORIZED): alert on these",
                                  ["provider", "code"])
PROVIDER_RECONCILED = Counter("pbxsms_provider_reconciled_total",
                              "Messages of an ambiguous send call looked up in the provider's "
                              "history: accepted (found), ambiguous (not found), "
                              "lookup_failed (history unavailable)",
                              ["provider", "result"])
PROVIDER_PAUSED = Gauge("pbxsms_provider_paused",
                        "1 while a provider refuses our credentials and sending is paused",
                        ["provider"])


UNROUTABLE = Counter("pbxsms_unroutable_total",
                     "Inbound messages stored without a route, by provider and cause "
                     "(invalid, unknown, disabled, provider)", ["provider", "cause"])
NUMBERS = Gauge("pbxsms_numbers", "Numbers with message settings, by enabled flag",
                ["enabled"])


def subject_family(subject: str) -> str:
    """`sms.status.<id>` → `sms.status`: label values must stay few."""
    parts = subject.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 and parts[1] in ("status", "dead") else subject


@functools.cache
def labelled(metric: M, *values: str) -> M:
    """`metric.labels(*values)`, looked up once: the hot paths count on every request.

    Only for label values from a small fixed set (routes, providers, results).
    """
    return metric.labels(*values)
