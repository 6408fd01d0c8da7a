"""`pbxsms doctor` for the mobile app: is its API reachable, and does it take our token?

A read-only JSON-RPC call (`getOrganizations`) is made: an API that answers it, or answers
that it does not know it, has accepted the token; nothing is pushed to anybody.
"""

from __future__ import annotations

from aiohttp import ClientError, ClientSession, ClientTimeout

from pbxsms.core.plugin_api import Check, Config, Finding, fail, ok, warn
from pbxsms.plugins.mobileapp.settings import MobileAppSettings


def checks(config: Config) -> list[Check]:
    settings = config.plugin("mobileapp", MobileAppSettings)
    return [Check("mobileapp", lambda: api(settings))]


async def api(settings: MobileAppSettings) -> Finding:
    if not settings.api_url or settings.api_token is None:
        return fail("RINGOTEL_API_URL or RINGOTEL_API_TOKEN unset: no app pushes",
                    "set both in .env, then `pbxsms reload`")
    where = f"app API {settings.api_url}"
    headers = {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"}
    try:
        async with ClientSession(timeout=ClientTimeout(total=min(settings.timeout, 10.0))
                                 ) as http, http.post(
                settings.api_url, json={"method": "getOrganizations", "params": {}},
                headers=headers) as response:
            status = response.status
    except (ClientError, TimeoutError) as error:
        return fail(f"cannot reach {where}: {type(error).__name__}: {error}",
                    "check RINGOTEL_API_URL and the network path to it")
    if status in (401, 403):
        return fail(f"{where} refused the token (HTTP {status})", "check RINGOTEL_API_TOKEN")
    if status >= 500:
        return warn(f"{where} answered HTTP {status}", "the app's API has trouble; try later")
    if status >= 400:
        return fail(f"{where} answered HTTP {status}",
                    "check RINGOTEL_API_URL: it should be the API's JSON-RPC endpoint")
    if not settings.webhook_token:
        return warn(f"{where} answered and took the token; RINGOTEL_WEBHOOK_TOKEN unset: "
                    "replies from the app are refused",
                    "set RINGOTEL_WEBHOOK_TOKEN and put it in the app's webhook settings")
    return ok(f"{where} answered and took the token")
