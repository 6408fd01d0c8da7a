"""Every hook is documented with its exact signature, and exercised here by a plugin."""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import click
import pytest
from aiohttp import ClientSession, web
from click.testing import CliRunner
from pydantic_settings import SettingsConfigDict

from pbxsms.core import hookspecs
from pbxsms.core.plugin_api import (
    Config,
    ConsumerRegister,
    ConsumerSpec,
    Delivery,
    OutboundMessage,
    Outcome,
    PluginNotLoaded,
    PluginSettings,
    Problem,
    ProviderRegister,
    RouteRegister,
    Runtime,
    SendResult,
    hookimpl,
)
from pbxsms.core.plugins import Plugins, hook_names
from tests.helpers import wait_until
from tests.support.gateway import Gateway

DOCS = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"


def test_every_hook_is_documented_with_its_signature() -> None:
    docs = DOCS.read_text()
    for name in hook_names():
        spec = getattr(hookspecs, name)
        signature = str(inspect.signature(spec)).replace("'", "")
        assert f"### {name}{signature}" in docs, f"docs/plugins.md lacks `{name}{signature}`"


def test_every_hook_has_a_test() -> None:
    tests = "".join(p.read_text() for p in Path(__file__).parent.rglob("test_*.py"))
    for name in hook_names():
        assert re.search(rf"def test_hook_{name}\b", tests), f"no test_hook_{name}"


class RecorderSettings(PluginSettings):
    model_config = SettingsConfigDict(env_prefix="RECORDER_")
    greeting: str = "hello"


class Recorder:
    """A plugin implementing every hook, recording what the core did with it."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.handled: list[bytes] = []
        self.history: list[bytes] = []
        self.ready = True
        self.sending = True

    @hookimpl
    def settings_model(self) -> type[PluginSettings]:
        self.calls.append("settings_model")
        return RecorderSettings

    @hookimpl
    def config_warnings(self, config: Config) -> list[Problem]:
        self.calls.append("config_warnings")
        greeting = config.plugin("recorder", RecorderSettings).greeting
        return [Problem("RECORDER_GREETING", f"is {greeting}")]

    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        @click.command("recorder-hello")
        def hello() -> None:
            click.echo("hello from a plugin")

        cli.add_command(hello)

    @hookimpl
    def register_routes(self, runtime: Runtime, register: RouteRegister) -> None:
        async def hello(request: web.Request) -> web.Response:
            settings = runtime.config.plugin("recorder", RecorderSettings)
            return web.json_response({"greeting": settings.greeting})

        register("GET", "/recorder", hello)

    @hookimpl
    def register_consumers(self, runtime: Runtime, register: ConsumerRegister) -> None:
        async def handle(delivery: Delivery) -> None:
            self.handled.append(delivery.data)

        async def close() -> None:
            self.calls.append("consumer closed")

        register(ConsumerSpec("recorder", "sms.recorder.>", handle, close=close))

        async def remember(delivery: Delivery) -> None:
            self.history.append(delivery.data)

        register(ConsumerSpec("recorder-history", "sms.history.>", remember, from_start=True))

    @hookimpl
    def register_providers(self, runtime: Runtime, register: ProviderRegister) -> None:
        register(FakeProvider())

    @hookimpl
    async def startup(self, runtime: Runtime) -> None:
        self.calls.append("startup")

    @hookimpl
    async def shutdown(self, runtime: Runtime) -> None:
        self.calls.append("shutdown")

    @hookimpl
    def readiness(self, runtime: Runtime) -> list[str]:
        return [] if self.ready else ["recorder is paused"]

    @hookimpl
    def degraded(self, runtime: Runtime) -> list[str]:
        return [] if self.sending else ["recorder cannot send"]

    @hookimpl
    def settings_reloaded(self, runtime: Runtime, old: Config, new: Config) -> None:
        before = old.plugin("recorder", RecorderSettings).greeting
        after = new.plugin("recorder", RecorderSettings).greeting
        self.calls.append(f"reloaded:{before}->{after}")


class FakeProvider:
    name = "fake"
    max_batch = 10
    flush_delay = 0.01
    retry_ambiguous = True

    async def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        return [SendResult(Outcome.ACCEPTED, provider_message_id=m.id) for m in messages]


def plugins_with(recorder: Recorder) -> Plugins:
    plugins = Plugins([])
    plugins.register(recorder, "recorder")
    return plugins


StartGateway = Callable[..., Awaitable[Gateway]]


async def test_hook_settings_model(start_gateway: StartGateway) -> None:
    recorder = Recorder()
    gateway = await start_gateway(env={"RECORDER_GREETING": "hi"}, plugins=plugins_with(recorder))
    assert "settings_model" in recorder.calls
    assert gateway.runtime.config.plugin("recorder", RecorderSettings).greeting == "hi"


async def test_plugin_settings_are_checked_and_name_the_plugin(start_gateway: StartGateway
                                                               ) -> None:
    gateway = await start_gateway(plugins=plugins_with(Recorder()))
    config = gateway.runtime.config
    with pytest.raises(PluginNotLoaded, match=r"plugin 'acme' has no settings loaded"):
        config.plugin("acme", RecorderSettings)

    class OtherSettings(PluginSettings):
        pass

    with pytest.raises(PluginNotLoaded,
                       match=r"plugin 'recorder' has settings of type RecorderSettings, "
                             r"not OtherSettings"):
        config.plugin("recorder", OtherSettings)


async def test_hook_config_warnings(start_gateway: StartGateway) -> None:
    recorder = Recorder()
    gateway = await start_gateway(plugins=plugins_with(recorder))
    warnings = gateway.runtime.plugins.config_warnings(gateway.runtime.config)
    assert Problem("RECORDER_GREETING", "is hello") in warnings


def test_hook_register_commands() -> None:
    recorder = Recorder()
    cli = click.Group()
    plugins_with(recorder).register_commands(cli)
    result = CliRunner().invoke(cli, ["recorder-hello"])
    assert result.output == "hello from a plugin\n"


async def test_hook_register_routes(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(plugins=plugins_with(Recorder()))
    async with ClientSession() as http, http.get(f"{gateway.url}/recorder") as response:
        assert response.status == 200
        assert await response.json() == {"greeting": "hello"}


async def test_hook_register_consumers(start_gateway: StartGateway) -> None:
    recorder = Recorder()
    gateway = await start_gateway(plugins=plugins_with(recorder))
    await gateway.runtime.publish("sms.recorder.x", b'{"n": 1}', "rec-1")
    await wait_until(lambda: recorder.handled == [b'{"n": 1}'], message="the consumer")
    assert "consumer closed" not in recorder.calls
    await gateway.server.stop()
    # The spec's close runs once its consumer has stopped, before the shutdown hooks.
    assert recorder.calls[-2:] == ["consumer closed", "shutdown"]


async def test_a_consumer_from_start_reads_what_the_stream_held_before_it(
        start_gateway: StartGateway) -> None:
    first = await start_gateway()
    await first.runtime.publish("sms.history.x", b'{"n": 0}', "hist-0")
    await first.runtime.publish("sms.recorder.x", b'{"n": 0}', "rec-0")
    recorder = Recorder()
    second = await start_gateway(plugins=plugins_with(recorder))
    await second.runtime.publish("sms.history.x", b'{"n": 1}', "hist-1")
    await second.runtime.publish("sms.recorder.x", b'{"n": 1}', "rec-1")
    await wait_until(lambda: len(recorder.history) == 2 and bool(recorder.handled),
                     message="both consumers")
    assert recorder.history == [b'{"n": 0}', b'{"n": 1}']
    assert recorder.handled == [b'{"n": 1}']  # the default: only what comes after


async def test_hook_register_providers(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(plugins=plugins_with(Recorder()))
    assert list(gateway.runtime.providers) == ["fake"]


async def test_hook_startup(start_gateway: StartGateway) -> None:
    recorder = Recorder()
    await start_gateway(plugins=plugins_with(recorder))
    assert "startup" in recorder.calls


async def test_hook_shutdown(start_gateway: StartGateway) -> None:
    recorder = Recorder()
    gateway = await start_gateway(plugins=plugins_with(recorder))
    await gateway.server.stop()
    assert recorder.calls[-1] == "shutdown"


async def test_hook_readiness(start_gateway: StartGateway) -> None:
    recorder = Recorder()
    gateway = await start_gateway(plugins=plugins_with(recorder))
    async with ClientSession() as http:
        async with http.get(f"{gateway.url}/readyz") as response:
            assert response.status == 200
        recorder.ready = False
        async with http.get(f"{gateway.url}/readyz") as response:
            assert response.status == 503
            assert (await response.json())["reasons"] == ["recorder is paused"]


async def test_hook_settings_reloaded(start_gateway: StartGateway) -> None:
    recorder = Recorder()
    gateway = await start_gateway(plugins=plugins_with(recorder))
    env_file = gateway.runtime.config.env_file
    assert env_file is not None
    env_file.write_text(env_file.read_text() + "RECORDER_GREETING=bonjour\n")
    await gateway.server.reload()
    assert "reloaded:hello->bonjour" in recorder.calls
    async with ClientSession() as http, http.get(f"{gateway.url}/recorder") as response:
        assert await response.json() == {"greeting": "bonjour"}


async def test_hook_degraded(start_gateway: StartGateway) -> None:
    recorder = Recorder()
    gateway = await start_gateway(plugins=plugins_with(recorder))
    recorder.sending = False
    async with ClientSession() as http, http.get(f"{gateway.url}/readyz") as response:
        # Degraded is still ready: a load balancer keeps sending webhooks here.
        assert response.status == 200
        assert await response.json() == {"status": "degraded",
                                         "degraded": ["recorder cannot send"]}
    recorder.ready = False
    async with ClientSession() as http, http.get(f"{gateway.url}/readyz") as response:
        assert response.status == 503
