"""`/metrics` after a small run: every metric docs/operations.md documents is exposed, with
the counts the run must produce; an undocumented `pbxsms_` metric fails too."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import ClientSession
from prometheus_client.parser import text_string_to_metric_families

from pbxsms.sim.clicksend import ClickSendSimulator
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.helpers import wait_until
from tests.support.delivery import HOOK_TOKEN, ORG, delivery_env
from tests.support.gateway import Gateway
from tests.support.smtp import SmtpServer

StartGateway = Callable[..., Awaitable[Gateway]]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
ROW = re.compile(r"^\| `(pbxsms_\w+)` \| (counter|gauge|histogram) \|", re.MULTILINE)

CUSTOMER = "+61422222222"
FRONT, BOOKINGS, NOBODY = "+61411111111", "+61433333333", "+61455555555"
TOML = f"""
[plugins]
enabled = ["clicksend", "email", "mobileapp"]

[bus]
backoff_initial = "50ms"
backoff_max = "1s"
max_deliver = 3

[[numbers]]
number = "{FRONT}"
provider = "clicksend"
extension = "201"
email = ["front@example.com"]
mobileapp_org = "{ORG}"

[[numbers]]
number = "{BOOKINGS}"
provider = "clicksend"
extension = "201"
email = ["bookings@example.com"]
mobileapp_org = "{ORG}"
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def documented() -> dict[str, str]:
    """metric name → type, from the table in docs/operations.md."""
    return dict(ROW.findall(DOCS.read_text()))


async def scrape(url: str) -> tuple[dict[str, str], Samples]:
    """The `pbxsms_` families (name → type) and every sample of the gateway's /metrics."""
    async with ClientSession() as http, http.get(f"{url}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    families: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        # prometheus_client adds a `<name>_created` gauge per counter and histogram.
        if not family.name.startswith("pbxsms_") or family.name.endswith("_created"):
            continue
        name = family.name + ("_total" if family.type == "counter" else "")
        families[name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return families, samples


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


# What the run below adds to each documented metric: (sample, labels, delta); gauges are
# compared by value. A metric the run does not touch is listed with no samples: it must
# still be exposed (its HELP and TYPE lines).
C = "clicksend"
EXPECTED: dict[str, list[tuple[str, dict[str, str], float]]] = {
    "pbxsms_webhooks_total": [
        ("pbxsms_webhooks_total", {"provider": C, "kind": "inbound", "result": "accepted"}, 3),
        ("pbxsms_webhooks_total", {"provider": C, "kind": "receipt", "result": "accepted"}, 1),
        ("pbxsms_webhooks_total", {"provider": C, "kind": "inbound", "result": "refused"}, 1),
        ("pbxsms_webhooks_total",
         {"provider": "mobileapp", "kind": "message", "result": "accepted"}, 1)],
    "pbxsms_http_connections_shed_total": [],
    "pbxsms_http_request_seconds": [
        ("pbxsms_http_request_seconds_count", {"route": "/webhook/clicksend/sms"}, 4),
        ("pbxsms_http_request_seconds_count", {"route": "/webhook/clicksend/dlr"}, 1)],
    "pbxsms_events_published_total": [
        ("pbxsms_events_published_total", {"subject": "sms.inbound.clicksend",
                                           "duplicate": "false"}, 3),
        ("pbxsms_events_published_total", {"subject": "sms.outbound", "duplicate": "false"}, 1),
        ("pbxsms_events_published_total", {"subject": "sms.dead", "duplicate": "false"}, 1)],
    "pbxsms_publish_failures_total": [],
    "pbxsms_unroutable_total": [
        ("pbxsms_unroutable_total", {"provider": C, "cause": "unknown"}, 1)],
    "pbxsms_deliveries_total": [
        ("pbxsms_deliveries_total", {"channel": "mobileapp", "outcome": "delivered"}, 2),
        ("pbxsms_deliveries_total", {"channel": "email", "outcome": "delivered"}, 1),
        ("pbxsms_deliveries_total", {"channel": "email", "outcome": "retrying"}, 1),
        ("pbxsms_deliveries_total", {"channel": "email", "outcome": "failed"}, 1)],
    "pbxsms_webhook_to_delivery_seconds": [
        ("pbxsms_webhook_to_delivery_seconds_count", {"channel": "mobileapp"}, 2),
        ("pbxsms_webhook_to_delivery_seconds_count", {"channel": "email"}, 1)],
    "pbxsms_outbound_messages_total": [
        ("pbxsms_outbound_messages_total", {"provider": C, "outcome": "accepted"}, 1)],
    "pbxsms_outbound_failures_total": [],
    "pbxsms_provider_requests_total": [
        ("pbxsms_provider_requests_total", {"provider": C, "result": "ok"}, 1)],
    "pbxsms_provider_batch_size": [
        ("pbxsms_provider_batch_size_count", {"provider": C}, 1)],
    "pbxsms_provider_request_seconds": [
        ("pbxsms_provider_request_seconds_count", {"provider": C}, 1)],
    "pbxsms_provider_account_errors_total": [],
    "pbxsms_provider_reconciled_total": [],
    "pbxsms_provider_paused": [],
    "pbxsms_consumer_outcomes_total": [
        ("pbxsms_consumer_outcomes_total", {"consumer": "deliver-email", "outcome": "ack"}, 2),
        ("pbxsms_consumer_outcomes_total", {"consumer": "deliver-email", "outcome": "retry"}, 1),
        ("pbxsms_consumer_outcomes_total", {"consumer": "deliver-email", "outcome": "dead"}, 1),
        ("pbxsms_consumer_outcomes_total", {"consumer": "outbound", "outcome": "ack"}, 1)],
    "pbxsms_dead_letters_total": [
        ("pbxsms_dead_letters_total", {"consumer": "deliver-email"}, 1)],
    "pbxsms_consumer_pending": [
        ("pbxsms_consumer_pending", {"consumer": "deliver-email"}, 0),
        ("pbxsms_consumer_pending", {"consumer": "deliver-mobileapp"}, 0)],
    "pbxsms_consumer_ack_pending": [
        ("pbxsms_consumer_ack_pending", {"consumer": "deliver-email"}, 0)],
    "pbxsms_numbers": [("pbxsms_numbers", {"enabled": "true"}, 2)],
    "pbxsms_reloads_total": [("pbxsms_reloads_total", {"result": "applied"}, 1)],
}
GAUGES = {name for name, kind in documented().items() if kind == "gauge"}


def test_the_expectations_cover_exactly_the_documented_metrics() -> None:
    assert set(EXPECTED) == set(documented())


async def test_metrics_after_a_small_run(start_gateway: StartGateway, app: MobileAppSimulator,
                                         smtp: SmtpServer) -> None:
    async with ClickSendSimulator() as clicksend:
        clicksend.add_account("pbx-user", "pbx-key")
        gateway = await start_gateway(toml=TOML, env=delivery_env(
            app, smtp, CLICKSEND_USERNAME="pbx-user", CLICKSEND_API_KEY="pbx-key",
            CLICKSEND_BASE_URL=clicksend.base_url, CLICKSEND_WEBHOOK_TOKEN="cs-secret"))
        _, before = await scrape(gateway.url)
        sms = f"{gateway.url}/webhook/clicksend/sms?token=cs-secret"
        dlr = f"{gateway.url}/webhook/clicksend/dlr?token=cs-secret"

        # One email retry then delivered; one email refused for good (a dead letter);
        # one message to a number nobody owns (the channels ack it untouched); one
        # webhook with a wrong token.
        smtp.mailbox.next_replies["front@example.com"] = ["451 try again later"]
        smtp.mailbox.always["bookings@example.com"] = "550 no such user"
        for to in (FRONT, BOOKINGS, NOBODY):
            assert (await clicksend.push_inbound(sms, CUSTOMER, to, "hello")).status == 200
        refused = await clicksend.push_inbound(sms.replace("cs-secret", "wrong"), CUSTOMER,
                                               FRONT, "hello")
        assert refused.status in (401, 403)
        await wait_until(lambda: len(app.pushes) == 2, message="two app pushes")
        await wait_until(lambda: len(smtp.mailbox.mails) == 1, message="one email")

        # The app's reply goes out through ClickSend; ClickSend's receipt comes back.
        answer = await app.reply(f"{gateway.url}/webhook/ringotel", HOOK_TOKEN, "201",
                                 CUSTOMER, "see you", ORG, messageid="rt-1")
        assert answer.status == 200
        await wait_until(lambda: len(clicksend.sent_messages) == 1, message="the send")
        receipt = await clicksend.push_receipt(dlr, clicksend.sent_messages[0]["message_id"])
        assert receipt.status == 200
        await gateway.server.reload()

        async def settled() -> bool:
            _, after = await scrape(gateway.url)
            return all(_holds(before, after, name, labels, value)
                       for rows in EXPECTED.values() for name, labels, value in rows)

        with contextlib.suppress(AssertionError):  # the asserts below say which count is off
            await wait_until(settled, timeout=15, message="every expected count")
        families, after = await scrape(gateway.url)
        docs = documented()
        assert families == docs, "exposed and documented metrics differ"
        for rows in EXPECTED.values():
            for name, labels, value in rows:
                sample = key(name, **labels)
                assert _holds(before, after, name, labels, value), (
                    name, labels, value, before.get(sample), after.get(sample))


def _holds(before: Samples, after: Samples, name: str, labels: dict[str, str],
           value: float) -> bool:
    sample = key(name, **labels)
    if sample not in after:
        return False
    if name in GAUGES:
        return after[sample] == value
    return after[sample] - before.get(sample, 0.0) == value
