"""The core's media, shipped as an ordinary plugin: settings, the `fetch-media` consumer,
the signed-link route."""

from __future__ import annotations

from pbxsms.core.config.problems import Problem
from pbxsms.core.config.settings import Config, PluginSettings
from pbxsms.core.hookspecs import hookimpl
from pbxsms.core.media.api import media_handler
from pbxsms.core.media.inbound import CONSUMER, MAX_DELIVER, SUBJECT, MediaConsumer
from pbxsms.core.media.links import PATH
from pbxsms.core.media.settings import MediaSettings
from pbxsms.core.registry import ConsumerRegister, ConsumerSpec, RouteRegister
from pbxsms.core.serve.runtime import Runtime


@hookimpl
def settings_model() -> type[PluginSettings]:
    return MediaSettings


@hookimpl
def config_warnings(config: Config) -> list[Problem]:
    settings: MediaSettings = config.plugin("media")
    problems = []
    if settings.url_secret is None or not settings.url_secret.get_secret_value():
        problems.append(Problem("PBXSMS_MEDIA_URL_SECRET",
                                "unset: the mobile app gets no links to MMS pictures"))
    elif not config.core.public_url:
        problems.append(Problem("PBXSMS_PUBLIC_URL",
                                "unset: links to MMS pictures cannot be made"))
    return problems


@hookimpl
def register_routes(runtime: Runtime, register: RouteRegister) -> None:
    register("GET", PATH, media_handler(runtime))


@hookimpl
def register_consumers(runtime: Runtime, register: ConsumerRegister) -> None:
    register(ConsumerSpec(CONSUMER, SUBJECT, MediaConsumer(runtime).handle,
                          max_deliver=MAX_DELIVER))
