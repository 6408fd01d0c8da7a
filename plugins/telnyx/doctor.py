"""`pbxsms doctor` for Telnyx: is the API key accepted (`GET /v2/messaging_profiles`), is
the webhook public key usable, and is the configured messaging profile one of the account's?"""

from __future__ import annotations

from aiohttp import ClientSession

from pbxsms.core.plugin_api import CarrierError, Check, Config, Finding, fail, ok, public_url, warn
from pbxsms.plugins.telnyx.client import HTTPError, TelnyxClient
from pbxsms.plugins.telnyx.settings import TelnyxSettings, telnyx_settings
from pbxsms.plugins.telnyx.signature import BadKey, public_key
from pbxsms.plugins.telnyx.webhooks import PATH

KEY_FIX = ("set TELNYX_API_KEY in .env (Mission Control → Account Settings → Keys & "
           "Credentials → API Keys), then `pbxsms reload`")


def checks(config: Config) -> list[Check]:
    settings = telnyx_settings(config)
    return [Check("telnyx", lambda: account(settings)),
            Check("telnyx webhooks", lambda: webhooks(config, settings))]


async def account(settings: TelnyxSettings) -> Finding:
    if not settings.can_send:
        return fail("TELNYX_API_KEY unset", KEY_FIX)
    url = f"{settings.base_url.rstrip('/')}/v2/messaging_profiles"
    async with ClientSession() as http:
        try:
            profiles = await TelnyxClient(http, settings).messaging_profiles()
        except HTTPError as error:
            if error.status in (401, 403):
                return fail(f"API key refused ({error}) by {url}", KEY_FIX)
            return fail(f"{url} answered: {error}", "see status.telnyx.com; try again")
        except CarrierError as error:
            return fail(str(error), "check TELNYX_BASE_URL and the network path to it")
    detail = f"API key accepted by {url} ({len(profiles)} messaging profile(s))"
    wanted = settings.messaging_profile_id
    if wanted and profiles and wanted not in {str(p.get("id")) for p in profiles}:
        return warn(detail + f"; TELNYX_MESSAGING_PROFILE_ID {wanted} is not among them",
                    "copy the id of the profile your numbers are on (Mission Control → "
                    "Messaging) into TELNYX_MESSAGING_PROFILE_ID")
    return ok(detail)


async def webhooks(config: Config, settings: TelnyxSettings) -> Finding:
    if not settings.public_key:
        return fail("TELNYX_PUBLIC_KEY unset: every Telnyx webhook is refused",
                    "copy the public key (Mission Control → Keys & Credentials → Public Key) "
                    "into TELNYX_PUBLIC_KEY, then `pbxsms reload`")
    try:
        public_key(settings.public_key)
    except BadKey as error:
        return fail(str(error), "copy the public key again, whole, from Mission Control → "
                                "Keys & Credentials → Public Key")
    url = public_url(config.core.public_url, PATH)
    if url is None:
        return warn("PBXSMS_PUBLIC_URL unset: `pbxsms telnyx webhook-url` cannot print the "
                    "URL", "set PBXSMS_PUBLIC_URL to the https:// address Telnyx reaches")
    return ok(f"public key usable; set the messaging profile's webhook URL to {url}")
