"""The core's sending, shipped as an ordinary plugin: the send API and the dispatcher."""

from __future__ import annotations

from weakref import WeakKeyDictionary

from pbxsms.core.config.settings import Config
from pbxsms.core.hookspecs import hookimpl
from pbxsms.core.outbound.api import SUBJECT, send_handler
from pbxsms.core.outbound.dispatcher import CONSUMER, Dispatcher
from pbxsms.core.registry import ConsumerRegister, ConsumerSpec, RouteRegister
from pbxsms.core.serve.runtime import Runtime

# The dispatcher of each runtime (tests run several in one process), for the hooks below.
_dispatchers: WeakKeyDictionary[Runtime, Dispatcher] = WeakKeyDictionary()


@hookimpl
def register_routes(runtime: Runtime, register: RouteRegister) -> None:
    register("POST", "/api/v1/messages", send_handler(runtime))


@hookimpl
def register_consumers(runtime: Runtime, register: ConsumerRegister) -> None:
    dispatcher = _dispatchers[runtime] = Dispatcher(runtime)
    register(ConsumerSpec(CONSUMER, SUBJECT, dispatcher.handle,
                          max_in_flight=dispatcher.max_in_flight()))


@hookimpl
def degraded(runtime: Runtime) -> list[str]:
    dispatcher = _dispatchers.get(runtime)
    if dispatcher is None or not dispatcher.held:
        return []
    return [f"outbound: {len(dispatcher.held)} message(s) held while sending is paused; "
            "they go out once the provider takes our account again (fix the settings "
            "and run `pbxsms reload`)"]


@hookimpl
def settings_reloaded(runtime: Runtime, old: Config, new: Config) -> None:
    dispatcher = _dispatchers.get(runtime)
    if dispatcher is not None:
        dispatcher.resume()
