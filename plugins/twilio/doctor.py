"""`pbxsms doctor` for Twilio: are the credentials accepted and the account active
(`GET /Accounts/{Sid}.json`), can Twilio's webhooks be checked, and does each Twilio
number of the TOML file send its messages to us?"""

from __future__ import annotations

from aiohttp import ClientSession

from pbxsms.core.plugin_api import (
    CarrierError,
    Check,
    Config,
    Finding,
    InvalidNumber,
    fail,
    ok,
    public_url,
    to_e164,
    warn,
)
from pbxsms.plugins.twilio.client import TwilioClient, TwilioError
from pbxsms.plugins.twilio.settings import NAME, TwilioSettings, twilio_settings
from pbxsms.plugins.twilio.webhooks import SMS_PATH, STATUS_PATH

CREDENTIALS = ("set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN in .env (Twilio Console → "
               "Account Info), then `pbxsms reload`")


def checks(config: Config) -> list[Check]:
    settings = twilio_settings(config)
    return [Check(NAME, lambda: account(settings)),
            Check(f"{NAME} webhooks", lambda: webhooks(config, settings)),
            Check(f"{NAME} numbers", lambda: numbers(config, settings))]


async def account(settings: TwilioSettings) -> Finding:
    if not settings.can_send:
        return fail("credentials unset", CREDENTIALS)
    url = f"{settings.base_url.rstrip('/')}/2010-04-01/Accounts/{settings.account_sid}.json"
    async with ClientSession() as http:
        try:
            data = await TwilioClient(http, settings).account()
        except TwilioError as error:
            if error.status in (401, 403):
                return fail(f"credentials refused by {url} ({error})",
                            "check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN in .env (Twilio "
                            "Console → Account Info; a rotated token must be copied again), "
                            "then `pbxsms reload`")
            if error.status == 404:
                return fail(f"{url}: no such account ({error})",
                            "TWILIO_ACCOUNT_SID must be the account's SID (AC...), not a "
                            "subaccount's or an API key's")
            return fail(f"{url} answered: {error}", "see status.twilio.com; try again")
        except CarrierError as error:
            return fail(str(error), "check TWILIO_BASE_URL and the network path to it")
    # The answer also holds the auth token: only these fields are read.
    status, kind = str(data.get("status") or "?"), str(data.get("type") or "?")
    name = str(data.get("friendly_name") or settings.account_sid)
    detail = f"account {name!r} accepted the credentials at {settings.base_url} ({status}, {kind})"
    if status != "active":
        return fail(detail, "the account is not active: reactivate it in the Twilio Console "
                            "(Billing) before anything can be sent")
    if kind == "Trial":
        return warn(detail + "; a trial account sends only to verified numbers",
                    "upgrade the account in the Twilio Console, or verify each recipient")
    return ok(detail)


async def webhooks(config: Config, settings: TwilioSettings) -> Finding:
    sms_url = public_url(config.core.public_url, SMS_PATH)
    if not settings.token:
        return fail("TWILIO_AUTH_TOKEN unset: every Twilio webhook is refused (its signature "
                    "cannot be checked)", CREDENTIALS)
    if sms_url is None:
        return fail("PBXSMS_PUBLIC_URL unset: Twilio signs the public URL it calls, so every "
                    "Twilio webhook is refused and no status callback is asked for",
                    "set PBXSMS_PUBLIC_URL to the https:// address Twilio reaches, then paste "
                    "`pbxsms twilio webhook-url` into the Twilio Console")
    if not sms_url.startswith("https://"):
        return warn(f"PBXSMS_PUBLIC_URL is {sms_url.removesuffix(SMS_PATH)}: Twilio would post "
                    "messages in clear",
                    "put the gateway behind TLS and set PBXSMS_PUBLIC_URL to its https:// URL")
    return ok(f"signatures checked over {sms_url} and "
              f"{public_url(config.core.public_url, STATUS_PATH)}")


async def numbers(config: Config, settings: TwilioSettings) -> Finding:
    """Each `[[numbers]]` on Twilio must be the account's, its inbound webhook our URL."""
    ours = []
    for entry in config.file.numbers:
        if entry.get("provider") == NAME and entry.get("enabled", True):
            try:
                ours.append(to_e164(str(entry.get("number")), config.core.default_region))
            except InvalidNumber:
                continue  # `pbxsms config check` reports it
    if not ours:
        return ok("no [[numbers]] on twilio in the TOML file (numbers set at run time with "
                  "`pbxsms numbers set` are not checked here)")
    if not settings.can_send:
        return fail("credentials unset: the numbers cannot be checked", CREDENTIALS)
    known = public_url(config.core.public_url, SMS_PATH)
    expected = known or SMS_PATH
    problems: list[str] = []
    fixes: list[str] = []
    doubts: list[str] = []
    async with ClientSession() as http:
        client = TwilioClient(http, settings)
        for number in ours:
            try:
                record = await client.incoming_number(number)
            except CarrierError as error:
                return fail(f"cannot list the account's numbers: {error}",
                            "run the `twilio` check's fix first")
            if record is None:
                problems.append(f"{number} is not a number of account {settings.account_sid}")
                fixes.append(f"buy or port {number} into this Twilio account, or set its "
                             "provider to the carrier that has it")
                continue
            url, method = str(record.get("sms_url") or ""), str(record.get("sms_method") or "")
            if not url:
                # No webhook of its own: it may be in a Messaging Service, whose URL counts.
                doubts.append(number)
            elif known and (url != expected or method.upper() != "POST"):
                problems.append(f"{number} posts its messages to {url or 'nowhere'} "
                                f"({method or '?'})")
                fixes.append(f"Twilio Console → Phone Numbers → {number} → Messaging → "
                             f"A MESSAGE COMES IN: Webhook, {expected}, HTTP POST")
    set_up = f"A MESSAGE COMES IN: Webhook, {expected}, HTTP POST"
    if problems:
        return fail("; ".join(problems), "; ".join(fixes))
    if doubts:
        return warn(f"{', '.join(doubts)} ha{'s' if len(doubts) == 1 else 've'} no inbound "
                    "webhook of its own", f"unless a Messaging Service posts to {expected}, "
                    f"set Twilio Console → Phone Numbers → the number → Messaging → {set_up}")
    return ok(f"{len(ours)} number(s) post their messages to {expected}")
