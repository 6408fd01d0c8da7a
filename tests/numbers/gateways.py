"""The gateway the numbers tests run: its API token and region, and a second provider
plugin (`othersms`) beside ClickSend."""

from __future__ import annotations

from typing import Any

from pbxsms.core.hookspecs import hookimpl
from pbxsms.core.plugins import Plugins
from pbxsms.core.registry import ProviderRegister
from pbxsms.core.serve.runtime import Runtime

TOKEN = "numbers-t0ken"
ENV = {"PBXSMS_API_TOKEN": TOKEN, "PBXSMS_DEFAULT_REGION": "AU"}


class StubProvider:
    """A second provider beside ClickSend; these tests never send through it."""

    max_batch = 1
    flush_delay = 0.0
    retry_ambiguous = True

    def __init__(self, name: str) -> None:
        self.name = name

    async def send_batch(self, messages: Any) -> Any:
        return []


class Providers:
    """Registers `othersms`, a provider beside the ClickSend plugin's own."""

    @hookimpl
    def register_providers(self, runtime: Runtime, register: ProviderRegister) -> None:
        register(StubProvider("othersms"))


def gateway_plugins() -> Plugins:
    plugins = Plugins(["clicksend", "email", "mobileapp"])
    plugins.register(Providers(), "test-providers")
    return plugins
