"""`pbxsms doctor` for Bandwidth: does the OAuth client get a token (nothing is sent), and
are the callback credentials set?"""

from __future__ import annotations

from aiohttp import ClientSession

from pbxsms.core.plugin_api import CarrierError, Check, Config, Finding, fail, ok, public_url, warn
from pbxsms.plugins.bandwidth.client import HTTPError, TokenCache
from pbxsms.plugins.bandwidth.settings import BandwidthSettings, bandwidth_settings
from pbxsms.plugins.bandwidth.webhooks import PATH

CLIENT_FIX = ("set BANDWIDTH_CLIENT_ID and BANDWIDTH_CLIENT_SECRET in .env (Bandwidth App → "
              "Account → API Credentials), then `pbxsms reload`")


def checks(config: Config) -> list[Check]:
    settings = bandwidth_settings(config)
    return [Check("bandwidth", lambda: account(settings)),
            Check("bandwidth callbacks", lambda: callbacks(config, settings))]


async def account(settings: BandwidthSettings) -> Finding:
    missing = [name for name, value in (("BANDWIDTH_ACCOUNT_ID", settings.account_id),
                                        ("BANDWIDTH_APPLICATION_ID", settings.application_id),
                                        ("BANDWIDTH_CLIENT_ID", settings.client_id),
                                        ("BANDWIDTH_CLIENT_SECRET", settings.secret))
               if not value]
    if missing:
        return fail(f"{', '.join(missing)} unset", f"set {', '.join(missing)} in .env "
                    "(Bandwidth App: the account id, Applications → the Messaging "
                    "application's id, Account → API Credentials)")
    async with ClientSession() as http:
        try:
            await TokenCache().token(http, settings)
        except HTTPError as error:
            if error.status in (400, 401, 403):
                return fail(f"OAuth client refused ({error}) by {settings.token_url}",
                            CLIENT_FIX)
            return fail(f"{settings.token_url} answered: {error}",
                        "see status.bandwidth.com; try again")
        except CarrierError as error:
            return fail(str(error), "check BANDWIDTH_TOKEN_URL and the network path to it")
    return ok(f"OAuth client accepted by {settings.token_url} (account "
              f"{settings.account_id}, application {settings.application_id})")


async def callbacks(config: Config, settings: BandwidthSettings) -> Finding:
    if not settings.callback_username or not settings.callback_secret:
        return fail("BANDWIDTH_CALLBACK_USERNAME/PASSWORD unset: every callback is refused",
                    "set both (e.g. `openssl rand -hex 32` for the password) and the same "
                    "on the Messaging application's callback credentials, then "
                    "`pbxsms reload`")
    url = public_url(config.core.public_url, PATH)
    if url is None:
        return warn("PBXSMS_PUBLIC_URL unset: `pbxsms bandwidth webhook-url` cannot print "
                    "the URL", "set PBXSMS_PUBLIC_URL to the https:// address Bandwidth "
                               "reaches")
    return ok(f"callback credentials set; set the application's callback URLs to {url}")
