"""The public plugin API: everything a pbxsms plugin imports, from this one module.

A plugin (built-in or third-party) imports `pbxsms.core.plugin_api` and nothing else of
`pbxsms.core` or `pbxsms.bus`, so the core may move its modules without breaking plugins.
It sits at the top: nothing inside the core imports it. See docs/plugins.md.
"""

from __future__ import annotations

from pbxsms.bus.consumer import Delivery, Permanent, Retry
from pbxsms.bus.kv import Bucket, modify, write_all
from pbxsms.bus.publish import PublishError
from pbxsms.core import __version__
from pbxsms.core.cli import (
    config_option,
    env_option,
    listen_options,
    load_or_exit,
    public_urls_or_exit,
    run_simulator,
)
from pbxsms.core.config.durations import Duration
from pbxsms.core.config.loader import hide_url_password, load_plugin_only
from pbxsms.core.config.problems import ConfigError, Problem
from pbxsms.core.config.settings import Config, PluginNotLoaded, PluginSettings
from pbxsms.core.health import metrics
from pbxsms.core.health.doctor import Check, Finding, fail, ok, warn
from pbxsms.core.hookspecs import hookimpl
from pbxsms.core.inbound.accept import Receipt, accept_inbound, accept_receipt, content_key, our_id
from pbxsms.core.inbound.delivery import fail_delivery, read_inbound, report
from pbxsms.core.inbound.ledger import Ledger
from pbxsms.core.inbound.replay import ReplayGuard
from pbxsms.core.inbound.subjects import inbound_subject
from pbxsms.core.media.delivery import NoLinks, carrier_links, refused_note, signed_link
from pbxsms.core.media.fetch import FetchPolicy
from pbxsms.core.media.inbound import awaiting_media
from pbxsms.core.media.store import media_store
from pbxsms.core.media.types import EXTENSIONS as MEDIA_EXTENSIONS
from pbxsms.core.messages.replay import RESENDABLE, Resent, next_resend_id, resend, resend_id
from pbxsms.core.model.events import (
    InboundMessage,
    MediaItem,
    OutboundRequest,
    SenderType,
    State,
    StatusEvent,
    new_id,
    utcnow,
)
from pbxsms.core.model.numbers import hostname
from pbxsms.core.model.phone import InvalidNumber, Sender, classify_sender, to_e164
from pbxsms.core.model.segments import Billing
from pbxsms.core.outbound.api import BUS_UNREADABLE, NOT_STORED, queue_outbound
from pbxsms.core.outbound.carrier import (
    Answer,
    CarrierError,
    CarrierHTTP,
    NoAnswer,
    NotSent,
    json_object,
    retry_after,
)
from pbxsms.core.outbound.pacing import AccountPause, CarrierGate, RateLimiter, fingerprint
from pbxsms.core.refusal import Refusal
from pbxsms.core.registry import (
    OPTED_OUT,
    ConsumerRegister,
    ConsumerSpec,
    OutboundMessage,
    Outcome,
    Provider,
    ProviderRegister,
    RouteHandler,
    RouteRegister,
    SendResult,
    no_media_links,
    opted_out,
)
from pbxsms.core.serve.app import MAX_BODY
from pbxsms.core.serve.http import json_error, parse_json, public_url, read_json, same_secret
from pbxsms.core.serve.runtime import Runtime
from pbxsms.core.stores.numbers import NoRoute, NoSender
from pbxsms.core.stores.status import Settled

__all__ = [
    "BUS_UNREADABLE",
    "MAX_BODY",
    "MEDIA_EXTENSIONS",
    "NOT_STORED",
    "OPTED_OUT",
    "RESENDABLE",
    "AccountPause",
    "Answer",
    "Billing",
    "Bucket",
    "CarrierError",
    "CarrierGate",
    "CarrierHTTP",
    "Check",
    "Config",
    "ConfigError",
    "ConsumerRegister",
    "ConsumerSpec",
    "Delivery",
    "Duration",
    "FetchPolicy",
    "Finding",
    "InboundMessage",
    "InvalidNumber",
    "Ledger",
    "MediaItem",
    "NoAnswer",
    "NoLinks",
    "NoRoute",
    "NoSender",
    "NotSent",
    "OutboundMessage",
    "OutboundRequest",
    "Outcome",
    "Permanent",
    "PluginNotLoaded",
    "PluginSettings",
    "Problem",
    "Provider",
    "ProviderRegister",
    "PublishError",
    "RateLimiter",
    "Receipt",
    "Refusal",
    "ReplayGuard",
    "Resent",
    "Retry",
    "RouteHandler",
    "RouteRegister",
    "Runtime",
    "SendResult",
    "Sender",
    "SenderType",
    "Settled",
    "State",
    "StatusEvent",
    "__version__",
    "accept_inbound",
    "accept_receipt",
    "awaiting_media",
    "carrier_links",
    "classify_sender",
    "config_option",
    "content_key",
    "env_option",
    "fail",
    "fail_delivery",
    "fingerprint",
    "hide_url_password",
    "hookimpl",
    "hostname",
    "inbound_subject",
    "json_error",
    "json_object",
    "listen_options",
    "load_or_exit",
    "load_plugin_only",
    "media_store",
    "metrics",
    "modify",
    "new_id",
    "next_resend_id",
    "no_media_links",
    "ok",
    "opted_out",
    "our_id",
    "parse_json",
    "public_url",
    "public_urls_or_exit",
    "queue_outbound",
    "read_inbound",
    "read_json",
    "refused_note",
    "report",
    "resend",
    "resend_id",
    "retry_after",
    "run_simulator",
    "same_secret",
    "signed_link",
    "to_e164",
    "utcnow",
    "warn",
    "write_all",
]
