"""The freeswitch plugin's hooks: inbound SMS onto the extensions' SIP phones, and their texts
back out as SMS."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import click

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
from pbxsms.plugins.freeswitch import doctor
from pbxsms.plugins.freeswitch.commands import freeswitch
from pbxsms.plugins.freeswitch.delivery import CONSUMER, MAX_ATTEMPTS, SipDelivery
from pbxsms.plugins.freeswitch.link import FreeSwitchLink, link_key
from pbxsms.plugins.freeswitch.replies import PhoneReplies
from pbxsms.plugins.freeswitch.settings import FreeSwitchSettings


@dataclass
class Channel:
    """One runtime's event-socket link (None while unconfigured) and its two sides."""

    runtime: Runtime
    replies: PhoneReplies
    link: FreeSwitchLink | None = None
    delivery: SipDelivery = field(init=False)

    def __post_init__(self) -> None:
        self.delivery = SipDelivery(self.runtime, lambda: self.link)

    async def connect(self, settings: FreeSwitchSettings) -> None:
        """(Re)open the link for these settings; closed when the password is unset."""
        if self.link is not None and settings.esl_password is not None \
                and self.link.key == link_key(settings):
            return
        old, self.link = self.link, None
        if settings.esl_password is not None:
            self.link = FreeSwitchLink(settings, self.replies.on_message)
            self.link.start()
        if old is not None:
            await old.close()

    async def close(self) -> None:
        if self.link is not None:
            await self.link.close()
            self.link = None
        await self.replies.close()


_CHANNELS: weakref.WeakKeyDictionary[Runtime, Channel] = weakref.WeakKeyDictionary()


def _channel(runtime: Runtime) -> Channel:
    if runtime not in _CHANNELS:
        _CHANNELS[runtime] = Channel(runtime, PhoneReplies(runtime))
    return _CHANNELS[runtime]


@hookimpl
def settings_model() -> type[PluginSettings]:
    return FreeSwitchSettings


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(freeswitch)


@hookimpl
async def startup(runtime: Runtime) -> None:
    # Connecting runs in the background: FreeSWITCH being away delays no other channel.
    await _channel(runtime).connect(runtime.config.plugin("freeswitch", FreeSwitchSettings))


@hookimpl
def register_consumers(runtime: Runtime, register: ConsumerRegister) -> None:
    # Its own durable consumer: a phone that is offline never holds back the app or email.
    register(ConsumerSpec(CONSUMER, "sms.inbound.>", _channel(runtime).delivery.handle,
                          max_deliver=MAX_ATTEMPTS))


@hookimpl
async def shutdown(runtime: Runtime) -> None:
    channel = _CHANNELS.pop(runtime, None)
    if channel is not None:
        await channel.close()


@hookimpl
async def settings_reloaded(runtime: Runtime, old: Config, new: Config) -> None:
    await _channel(runtime).connect(new.plugin("freeswitch", FreeSwitchSettings))


@hookimpl
def degraded(runtime: Runtime) -> list[str]:
    channel = _CHANNELS.get(runtime)
    link = channel.link if channel is not None else None
    if link is None or link.client.connected:
        return []
    return [f"FreeSWITCH event socket {link.client.where}: {link.client.last_error}"]


@hookimpl
def config_warnings(config: Config) -> list[Problem]:
    settings = config.plugin("freeswitch", FreeSwitchSettings)
    if settings.esl_password is None:
        return [Problem("FREESWITCH_ESL_PASSWORD",
                        "unset: inbound SMS are not delivered to the SIP phones, and the "
                        "phones' texts are not sent")]
    return []


@hookimpl
def doctor_checks(config: Config) -> list[Check]:
    return doctor.checks(config)
