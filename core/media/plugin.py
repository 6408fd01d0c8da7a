"""The core's media, shipped as an ordinary plugin: settings, the `fetch-media` consumer,
the signed-link route."""

from __future__ import annotations

from pbxsms.core.config.problems import Problem
from pbxsms.core.config.settings import Config, PluginSettings
from pbxsms.core.hookspecs import hookimpl
from pbxsms.core.inbound.subjects import MMS_SUBJECTS
from pbxsms.core.media.api import media_handler
from pbxsms.core.media.inbound import CONSUMER, MAX_DELIVER, MediaConsumer
from pbxsms.core.media.links import PATH
from pbxsms.core.media.outbound import UPLOAD_PATH, upload_handler
from pbxsms.core.media.settings import MediaSettings
from pbxsms.core.registry import ConsumerRegister, ConsumerSpec, RouteRegister
from pbxsms.core.serve.runtime import Runtime


@hookimpl
def settings_model() -> type[PluginSettings]:
    return MediaSettings


@hookimpl
def config_warnings(config: Config) -> list[Problem]:
    # Without PBXSMS_PUBLIC_URL no links can be made; the core's own warning names it.
    return []


@hookimpl
def register_routes(runtime: Runtime, register: RouteRegister) -> None:
    register("GET", PATH, media_handler(runtime))
    register("POST", UPLOAD_PATH, upload_handler(runtime))


@hookimpl
def register_consumers(runtime: Runtime, register: ConsumerRegister) -> None:
    register(ConsumerSpec(CONSUMER, MMS_SUBJECTS, MediaConsumer(runtime).handle,
                          max_deliver=MAX_DELIVER))
