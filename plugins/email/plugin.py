"""The email plugin's hooks: a read-only email copy of each inbound SMS."""

from __future__ import annotations

import weakref

from pbxsms.core.config.problems import Problem
from pbxsms.core.config.settings import Config, PluginSettings
from pbxsms.core.health.doctor import Check
from pbxsms.core.hookspecs import hookimpl
from pbxsms.core.registry import ConsumerRegister, ConsumerSpec
from pbxsms.core.serve.runtime import Runtime
from pbxsms.plugins.email import doctor
from pbxsms.plugins.email.delivery import CONSUMER, EmailDelivery
from pbxsms.plugins.email.settings import EmailSettings


@hookimpl
def settings_model() -> type[PluginSettings]:
    return EmailSettings


# Each runtime's email consumer, so that shutdown can close its SMTP connections.
_DELIVERIES: weakref.WeakKeyDictionary[Runtime, EmailDelivery] = weakref.WeakKeyDictionary()


@hookimpl
def register_consumers(runtime: Runtime, register: ConsumerRegister) -> None:
    # Its own durable consumer: an SMTP outage never delays the app pushes.
    delivery = _DELIVERIES[runtime] = EmailDelivery(runtime)
    register(ConsumerSpec(CONSUMER, "sms.inbound.>", delivery.handle))


@hookimpl
async def shutdown(runtime: Runtime) -> None:
    delivery = _DELIVERIES.pop(runtime, None)
    if delivery is not None:
        await delivery.close()


@hookimpl
def config_warnings(config: Config) -> list[Problem]:
    settings: EmailSettings = config.plugin("email")
    if not settings.host:
        return [Problem("PBXSMS_SMTP_HOST", "unset: no email copies of inbound SMS are sent")]
    return []


@hookimpl
def doctor_checks(config: Config) -> list[Check]:
    return doctor.checks(config)
