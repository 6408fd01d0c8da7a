"""The core's own routes, shipped as an ordinary plugin: health, readiness, metrics."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pbxsms.core.config.problems import Problem
from pbxsms.core.config.settings import Config
from pbxsms.core.health.doctor import Check, core_checks
from pbxsms.core.hookspecs import hookimpl
from pbxsms.core.registry import RouteRegister
from pbxsms.core.serve.runtime import Runtime


@hookimpl
def register_routes(runtime: Runtime, register: RouteRegister) -> None:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        reasons = runtime.readiness()
        if reasons:
            return web.json_response({"status": "not ready", "reasons": reasons}, status=503)
        # Still ready: e.g. sending paused on bad credentials must not take inbound
        # webhooks out of a load balancer that health-checks this route.
        degraded = runtime.plugins.degraded(runtime)
        if degraded:
            return web.json_response({"status": "degraded", "degraded": degraded})
        return web.json_response({"status": "ready"})

    async def metrics(request: web.Request) -> web.Response:
        await runtime.refresh_backlog()
        return web.Response(body=generate_latest(),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    register("GET", "/healthz", healthz)
    register("GET", "/readyz", readyz)
    register("GET", "/metrics", metrics)


@hookimpl
def config_warnings(config: Config) -> list[Problem]:
    core = config.core
    problems = []
    if core.api_token is None or not core.api_token.get_secret_value():
        problems.append(Problem("PBXSMS_API_TOKEN",
                                "unset: /api/v1 refuses every call (sending, numbers)"))
    if not core.public_url:
        problems.append(Problem("PBXSMS_PUBLIC_URL",
                                "unset: `pbxsms clicksend webhook-url` cannot print the URLs, "
                                "and the mobile app gets no links to MMS pictures"))
    return problems


@hookimpl
def doctor_checks(config: Config) -> list[Check]:
    return core_checks(config)
