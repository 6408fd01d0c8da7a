"""`pbxsms doctor` for ClickSend: are the credentials accepted (`GET /v3/account`)?"""

from __future__ import annotations

from aiohttp import ClientSession

from pbxsms.core.plugin_api import CarrierError, Check, Config, Finding, fail, ok, public_url, warn
from pbxsms.plugins.clicksend.client import ClickSendClient, HTTPError
from pbxsms.plugins.clicksend.settings import ClickSendSettings
from pbxsms.plugins.clicksend.webhooks import SMS_PATH, webhook_token

CREDENTIALS = ("set CLICKSEND_USERNAME and CLICKSEND_API_KEY in .env (ClickSend dashboard → "
               "Developers → API Credentials), then `pbxsms reload`")


def checks(config: Config) -> list[Check]:
    settings = config.plugin("clicksend", ClickSendSettings)
    return [Check("clicksend", lambda: account(settings)),
            Check("clicksend webhooks", lambda: webhooks(config, settings))]


async def account(settings: ClickSendSettings) -> Finding:
    if not settings.can_send:
        return fail("credentials unset", CREDENTIALS)
    url = f"{settings.base_url.rstrip('/')}/v3/account"
    subaccount = (settings.subaccount_id or "").strip()
    async with ClientSession() as http:
        client = ClickSendClient(http, settings)
        try:
            data = await client.account()
            # Records carry live API keys: only the ids are read.
            known = ([str(r.get("subaccount_id") or "") for r in await client.subaccounts()]
                     if subaccount else [])
        except HTTPError as error:
            if error.status in (401, 403):
                return fail(f"credentials refused ({error.status}) by {url}",
                            "check CLICKSEND_USERNAME and CLICKSEND_API_KEY in .env (ClickSend "
                            "dashboard → Developers → API Credentials), then `pbxsms reload`")
            return fail(f"{url} answered: {error}", "see ClickSend's status page; try again")
        except CarrierError as error:
            return fail(f"{error}", "check CLICKSEND_BASE_URL and the network path to it")
    # `_subaccount` also holds the live API key: only its id is read.
    balance = data.get("balance")
    detail = f"credentials accepted by {url}" + (
        f" (balance {balance})" if balance is not None else "")
    used = data.get("_subaccount")
    used_id = str(used.get("subaccount_id") or "") if isinstance(used, dict) else ""
    if subaccount and subaccount not in known:
        ids = ", ".join(sorted(filter(None, known))) or "none"
        return fail(detail + f"; CLICKSEND_SUBACCOUNT_ID {subaccount} is not one of the "
                    f"account's subaccounts ({ids}): every inbound webhook is refused (403)",
                    "run `pbxsms clicksend subaccounts` and set CLICKSEND_SUBACCOUNT_ID to "
                    "the subaccount the numbers belong to")
    if subaccount and used_id and used_id != subaccount:
        return warn(detail + f"; these credentials are subaccount {used_id}, "
                    f"CLICKSEND_SUBACCOUNT_ID is {subaccount}",
                    "run `pbxsms clicksend subaccounts` and set CLICKSEND_SUBACCOUNT_ID to the "
                    "subaccount the numbers belong to")
    return ok(detail)


async def webhooks(config: Config, settings: ClickSendSettings) -> Finding:
    # The same severity as `config check`, which exits non-zero on both.
    if webhook_token(settings) is None:
        exposure = ("anyone who finds the webhook URL can post messages"
                    if settings.webhook_insecure else "every ClickSend webhook is refused")
        return fail(f"CLICKSEND_WEBHOOK_TOKEN unset: {exposure}",
                    "set a long random CLICKSEND_WEBHOOK_TOKEN, run "
                    "`pbxsms reload` and paste `pbxsms clicksend webhook-url` into ClickSend")
    sms_url = public_url(config.core.public_url, SMS_PATH)
    if sms_url is None:
        return fail("PBXSMS_PUBLIC_URL unset: `pbxsms clicksend webhook-url` cannot print the "
                    "URLs", "set PBXSMS_PUBLIC_URL to the https:// address ClickSend reaches")
    return ok(f"token set; URLs under {sms_url.removesuffix(SMS_PATH)}")
