"""The HTTP skeleton: health, readiness, JSON errors."""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable

from aiohttp import ClientSession, web

from pbxsms.bus.embedded import EmbeddedNats
from pbxsms.core.hookspecs import hookimpl
from pbxsms.core.model.numbers import NumberError
from pbxsms.core.plugins import Plugins
from pbxsms.core.refusal import Refusal
from pbxsms.core.registry import RouteRegister
from pbxsms.core.serve.http import public_url
from pbxsms.core.serve.runtime import Runtime
from tests.support.gateway import Gateway

StartGateway = Callable[..., Awaitable[Gateway]]


async def test_health_ready_and_json_errors(start_gateway: StartGateway) -> None:
    # Ready means nothing to report: the ClickSend webhooks have their token.
    gateway = await start_gateway(env={"CLICKSEND_WEBHOOK_TOKEN": "cs-hook-token"})
    async with ClientSession() as http:
        async with http.get(f"{gateway.url}/healthz") as response:
            assert (response.status, await response.json()) == (200, {"status": "ok"})
        async with http.get(f"{gateway.url}/readyz") as response:
            assert (response.status, await response.json()) == (200, {"status": "ready"})
        async with http.get(f"{gateway.url}/no/such/route") as response:
            assert (response.status, await response.json()) == (404, {"error": "not found"})
        async with http.delete(f"{gateway.url}/healthz") as response:
            assert response.status == 405
            assert await response.json() == {"error": "method not allowed"}
        async with http.get(f"{gateway.url}/metrics") as response:
            assert response.status == 200
            assert "pbxsms_http_request_seconds" in await response.text()


async def test_readyz_reports_lost_nats(start_gateway: StartGateway) -> None:
    gateway = await start_gateway()
    assert gateway.runtime.nc is not None
    await gateway.runtime.nc.close()
    async with ClientSession() as http, http.get(f"{gateway.url}/readyz") as response:
        assert response.status == 503
        assert (await response.json())["reasons"] == ["not connected to NATS"]


async def test_a_bus_outage_is_a_503_not_a_500(start_gateway: StartGateway,
                                               nats_server: EmbeddedNats) -> None:
    """A handler that reads the bus while NATS is down answers 503 (come back later)."""
    gateway = await start_gateway(toml="[bus]\npublish_timeout = 1\n",
                                  env={"PBXSMS_API_TOKEN": "t0ken"})
    await nats_server.stop()
    url = f"{gateway.url}/api/v1/messages/5e0c2f7a-1b2c-4d3e-8f90-123456789abc"
    async with ClientSession(headers={"Authorization": "Bearer t0ken"}) as http, \
            http.get(url) as response:
        assert response.status == 503
        assert await response.json() == {"error": "the message bus is unavailable; try again"}


class Refuser:
    """A plugin whose routes refuse: a Refusal of its own and a domain error that is one."""

    @hookimpl
    def register_routes(self, runtime: Runtime, register: RouteRegister) -> None:
        async def busy(request: web.Request) -> web.Response:
            raise Refusal(429, "too many tries; wait", field="attempt",
                          headers={"Retry-After": "7"})

        async def settings(request: web.Request) -> web.Response:
            raise NumberError("numbers[2].email", "not an email address")

        async def number(request: web.Request) -> web.Response:
            try:
                return web.json_response(int(request.query.get("n", "")))
            except ValueError as error:
                raise Refusal(400, "n: not a number", field="n") from error

        register("POST", "/refuser/busy", busy)
        register("GET", "/refuser/settings", settings)
        register("GET", "/refuser/number", number)


async def test_a_refusal_from_a_plugin_route_is_the_json_error(
        start_gateway: StartGateway) -> None:
    plugins = Plugins([])
    plugins.register(Refuser(), "refuser")
    gateway = await start_gateway(plugins=plugins)
    async with ClientSession() as http:
        async with http.post(f"{gateway.url}/refuser/busy") as response:
            assert response.status == 429
            assert response.headers["Retry-After"] == "7"
            assert response.content_type == "application/json"
            assert await response.json() == {"error": "too many tries; wait",
                                             "field": "attempt"}
        async with http.get(f"{gateway.url}/refuser/settings") as response:
            assert response.status == 422
            assert await response.json() == {"error": "not an email address",
                                             "field": "numbers[2].email"}


async def test_a_refused_request_is_freed_at_once_not_left_to_the_collector(
        start_gateway: StartGateway) -> None:
    """An answered error leaves no reference cycle holding its request (a traceback's
    frames hold the request): under a flood of bad requests they would pile up in memory
    until the collector, which runs rarely here, frees them."""
    plugins = Plugins([])
    plugins.register(Refuser(), "refuser")
    gateway = await start_gateway(plugins=plugins)
    refused = [("POST", "/refuser/busy"), ("GET", "/refuser/settings"),
               ("GET", "/refuser/number?n=x"), ("GET", "/no/such/route"),
               ("DELETE", "/healthz")]
    gc.collect()
    gc.disable()
    try:
        async with ClientSession() as http:
            for method, path in refused * 3:
                async with http.request(method, gateway.url + path) as response:
                    assert response.status in (400, 404, 405, 422, 429)
        # What the collector would free now, kept for inspection instead.
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        left = [item for item in gc.garbage if isinstance(item, web.Request)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == []


def test_public_url_joins_the_base_and_keeps_the_path_and_query_as_sent() -> None:
    # Behind a TLS proxy: the URL the carrier called (and signed), whatever reached us.
    assert public_url(" https://sms.example.com/ ", "/webhook/twilio/sms?id=a%2Fb") == \
        "https://sms.example.com/webhook/twilio/sms?id=a%2Fb"
    assert public_url("https://example.com/pbx", "/webhook/acme") == \
        "https://example.com/pbx/webhook/acme"
    assert public_url(None, "/webhook/acme") is None
    assert public_url("  ", "/webhook/acme") is None
