"""The email plugin's hooks: a read-only email copy of each inbound SMS."""

from __future__ import annotations

from pbxsms.core.plugin_api import (
    Check,
    Config,
    ConsumerRegister,
    ConsumerSpec,
    PluginSettings,
    Problem,
    Runtime,
    hookimpl,
)
from pbxsms.plugins.email import doctor
from pbxsms.plugins.email.delivery import CONSUMER, EmailDelivery
from pbxsms.plugins.email.settings import EmailSettings


@hookimpl
def settings_model() -> type[PluginSettings]:
    return EmailSettings


@hookimpl
def register_consumers(runtime: Runtime, register: ConsumerRegister) -> None:
    # Its own durable consumer: an SMTP outage never delays the app pushes.
    delivery = EmailDelivery(runtime)
    register(ConsumerSpec(CONSUMER, "sms.inbound.>", delivery.handle, close=delivery.close))


@hookimpl
def config_warnings(config: Config) -> list[Problem]:
    settings = config.plugin("email", EmailSettings)
    if not settings.host:
        return [Problem("PBXSMS_SMTP_HOST", "unset: no email copies of inbound SMS are sent")]
    return []


@hookimpl
def doctor_checks(config: Config) -> list[Check]:
    return doctor.checks(config)
