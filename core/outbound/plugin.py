"""The core's sending, shipped as an ordinary plugin: the send API and the dispatcher."""

from __future__ import annotations

from pbxsms.core.hookspecs import hookimpl
from pbxsms.core.outbound.api import SUBJECT, send_handler
from pbxsms.core.outbound.dispatcher import CONSUMER, Dispatcher
from pbxsms.core.registry import ConsumerRegister, ConsumerSpec, RouteRegister
from pbxsms.core.serve.runtime import Runtime


@hookimpl
def register_routes(runtime: Runtime, register: RouteRegister) -> None:
    register("POST", "/api/v1/messages", send_handler(runtime))


@hookimpl
def register_consumers(runtime: Runtime, register: ConsumerRegister) -> None:
    dispatcher = Dispatcher(runtime)
    register(ConsumerSpec(CONSUMER, SUBJECT, dispatcher.handle,
                          max_in_flight=dispatcher.max_in_flight()))
