"""`pbxsms doctor` for FreeSWITCH: does its event socket take our password, is mod_sms
loaded, and are the extensions of the file's `sip = true` numbers registered? Nothing is
sent to any phone."""

from __future__ import annotations

from pbxsms.core.plugin_api import Check, Config, Finding, fail, ok, warn
from pbxsms.plugins.freeswitch.esl import AclRefused, AuthRefused, EslClosed, EslError, api_once
from pbxsms.plugins.freeswitch.settings import FreeSwitchSettings


def checks(config: Config) -> list[Check]:
    settings = config.plugin("freeswitch", FreeSwitchSettings)
    return [Check("freeswitch", lambda: event_socket(settings, sip_users(config, settings)))]


def sip_users(config: Config, settings: FreeSwitchSettings) -> list[str]:
    """`extension@domain` of each `[[numbers]]` table with `sip = true` (the numbers kept
    live in the bus are not read here: doctor may run while the gateway does not)."""
    users = []
    for row in config.file.numbers:
        extension, domain = row.get("extension"), row.get("domain") or settings.domain
        if row.get("sip") is True and extension and domain:
            users.append(f"{extension}@{str(domain).lower()}")
    return list(dict.fromkeys(users))


async def event_socket(settings: FreeSwitchSettings, users: list[str]) -> Finding:
    if settings.esl_password is None:
        return fail("FREESWITCH_ESL_PASSWORD unset: no texts reach the SIP phones",
                    "set it to the `password` of FreeSWITCH's event_socket.conf.xml")
    where = f"FreeSWITCH event socket {settings.esl_host}:{settings.esl_port}"
    commands = ["module_exists mod_sms",
                *(f"sofia_contact {settings.sip_profile}/{user}" for user in users)]
    try:
        answers = await api_once(settings.esl_host, settings.esl_port,
                                 settings.esl_password.get_secret_value(), commands,
                                 min(settings.timeout, 10.0))
    except AuthRefused:
        return fail(f"{where} refused the password",
                    "set FREESWITCH_ESL_PASSWORD to the `password` param of "
                    "autoload_configs/event_socket.conf.xml, then `pbxsms reload`")
    except AclRefused:
        return fail(f"{where} refused this host (its ACL)",
                    "allow this host in `apply-inbound-acl` of event_socket.conf.xml")
    except EslClosed as error:
        return fail(f"cannot reach {where}: {error}",
                    "check FREESWITCH_ESL_HOST and FREESWITCH_ESL_PORT, and that "
                    "mod_event_socket listens on an address this host reaches (`listen-ip`)")
    except EslError as error:
        return fail(f"{where}: {error}", "check that this port is FreeSWITCH's event socket")
    if answers[0].strip() != "true":
        return warn(f"{where} took the password, but mod_sms is not loaded: SMS::SEND_MESSAGE "
                    "would go nowhere", "load mod_sms (modules.conf.xml) in FreeSWITCH")
    absent = [user for user, answer in zip(users, answers[1:], strict=True)
              if answer.strip().startswith(("error/", "-ERR")) or not answer.strip()]
    detail = f"{where} took the password; mod_sms is loaded"
    if absent:
        return warn(f"{detail}; no SIP device registered for {', '.join(absent)} (their "
                    "texts wait until one registers)",
                    f"register a phone, or check the profile (FREESWITCH_SIP_PROFILE="
                    f"{settings.sip_profile}) and the numbers' domain")
    if users:
        detail += f"; registered: {', '.join(users)}"
    return ok(detail)
