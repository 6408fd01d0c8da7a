"""docs/plugin-guide.md's example provider plugin, loaded and run against a stand-in Acme
API: the page shows exactly the code that runs here, so it cannot rot."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp import ClientSession, web
from prometheus_client import REGISTRY

from pbxsms.core.health.doctor import run_doctor
from pbxsms.core.model.events import InboundMessage, State
from pbxsms.core.plugins import Plugins
from tests.helpers import wait_until
from tests.support.gateway import Gateway

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "acme_plugin.py"
GUIDE = ROOT / "docs" / "plugin-guide.md"
StartGateway = Callable[..., Awaitable[Gateway]]
OURS, CUSTOMER = "+61411111111", "+61422222222"
TOML = f"""
[[numbers]]
number = "{OURS}"
provider = "acme"
extension = "201"
"""


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("acme_plugin", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the annotations through it
    spec.loader.exec_module(module)
    return module


class AcmeApi:
    """A stand-in for Acme's REST API, over loopback."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    def authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == "Bearer acme-key"

    async def messages(self, request: web.Request) -> web.Response:
        if not self.authorised(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        self.sent.append({**await request.json(), "authorization": "ok"})
        return web.json_response({"id": f"acme-{len(self.sent)}"})

    async def account(self, request: web.Request) -> web.Response:
        return web.json_response({}, status=200 if self.authorised(request) else 401)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_get("/v1/account", self.account)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def acme() -> AsyncIterator[AcmeApi]:
    api = AcmeApi()
    await api.start()
    yield api
    await api.stop()


async def state_of(gateway: Gateway, message_id: str, state: State) -> bool:
    record = await gateway.runtime.status.get(message_id)
    return record is not None and record.state == state


def test_the_guide_shows_the_example_as_it_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.DOTALL)
    assert EXAMPLE.read_text() in blocks, "docs/plugin-guide.md must show acme_plugin.py whole"


def test_the_example_imports_pbxsms_only_through_the_plugin_api() -> None:
    imported = re.findall(r"^\s*(?:from|import) (pbxsms[\w.]*)", EXAMPLE.read_text(), re.M)
    assert imported == ["pbxsms.core.plugin_api"]


async def test_the_example_plugin_receives_sends_and_checks(
        start_gateway: StartGateway, acme: AcmeApi) -> None:
    plugins = Plugins([])
    plugins.register(load_example(), "acme")
    gateway = await start_gateway(toml=TOML, plugins=plugins, env={
        "ACME_API_URL": acme.url, "ACME_API_KEY": "acme-key", "ACME_WEBHOOK_TOKEN": "hook",
        "PBXSMS_API_TOKEN": "api", "PBXSMS_PUBLIC_URL": "https://sms.example.com"})
    async with ClientSession() as http:
        # Inbound: stored once, routed to extension 201 by the number's settings.
        hook = f"{gateway.url}/webhook/acme?token=hook"
        webhook = {"id": "in-1", "from": CUSTOMER, "to": OURS, "text": "Hello Acme"}
        async with http.post(hook, json=webhook) as response:
            assert response.status == 200
            first = await response.json()
        async with http.post(hook, json=webhook) as response:
            assert await response.json() == {**first, "duplicate": True}
        refused = {"provider": "acme", "kind": "inbound", "result": "refused"}
        before = REGISTRY.get_sample_value("pbxsms_webhooks_total", refused) or 0.0
        async with http.post(hook.replace("token=hook", "token=nope"), json=webhook) as response:
            assert response.status == 401
        assert REGISTRY.get_sample_value("pbxsms_webhooks_total", refused) == before + 1
        stored = await gateway.runtime.js.get_last_msg("SMS", "sms.inbound.acme")
        message = InboundMessage.model_validate_json(stored.data or b"")
        assert message.id == first["id"] and message.route is not None
        assert (message.route.extension, message.body) == ("201", "Hello Acme")

        # Outbound: the send API → the dispatcher → Acme, and the status says accepted.
        async with http.post(f"{gateway.url}/api/v1/messages",
                             headers={"Authorization": "Bearer api"},
                             json={"from": OURS, "to": CUSTOMER, "body": "Hi back"}) as response:
            assert response.status == 202
            ours = (await response.json())["id"]

    async def accepted() -> bool:
        record = await gateway.runtime.status.get(ours)
        return record is not None and record.state == State.ACCEPTED

    await wait_until(accepted, message="the message accepted by Acme")
    assert acme.sent == [{"from": OURS, "to": CUSTOMER, "text": "Hi back", "reference": ours,
                          "authorization": "ok"}]

    # Receipts: Acme's states become ours; a repeat, a late earlier state, a stranger's.
    receipts = f"{gateway.url}/webhook/acme/receipt?token=hook"
    delivered = {"id": "acme-1", "reference": ours, "status": "delivered"}
    async with ClientSession() as http:
        for report in ({**delivered, "status": "sent"}, delivered):
            async with http.post(receipts, json=report) as response:
                assert (await response.json())["id"] == ours
        await wait_until(lambda: state_of(gateway, ours, State.DELIVERED),
                         message="the receipt marks the message delivered")
        async with http.post(receipts, json=delivered) as response:
            assert await response.json() == {"id": ours, "duplicate": True}
        # No reference: found by Acme's id, which the `accepted` status recorded.
        async with http.post(receipts, json={"id": "acme-1", "status": "queued"}) as response:
            assert (await response.json())["id"] == ours
        async with http.post(receipts, json={"id": "acme-999", "status": "delivered"}
                             ) as response:
            assert await response.json() == {"result": "unmatched"}
        async with http.post(receipts, json={**delivered, "status": "lost"}) as response:
            assert response.status == 422
    # `queued` came after `delivered` (folded before its answer): a final state never
    # regresses.
    assert await state_of(gateway, ours, State.DELIVERED)

    # doctor: the plugin's check runs with the core's.
    lines: list[str] = []
    assert await run_doctor(gateway.runtime.config, plugins, lines.append), lines
    assert f"ok    acme: credentials accepted by {acme.url}" in lines
