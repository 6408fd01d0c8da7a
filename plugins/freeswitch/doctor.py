"""`pbxsms doctor` for FreeSWITCH: does its event socket take our password, and is mod_sms
loaded? Nothing is sent to any phone."""

from __future__ import annotations

from pbxsms.core.config.settings import Config
from pbxsms.core.health.doctor import Check, Finding, fail, ok, warn
from pbxsms.plugins.freeswitch.esl import (
    AclRefused,
    AuthRefused,
    EslClosed,
    EslError,
    api_once,
)
from pbxsms.plugins.freeswitch.settings import FreeSwitchSettings


def checks(config: Config) -> list[Check]:
    settings: FreeSwitchSettings = config.plugin("freeswitch")
    return [Check("freeswitch", lambda: event_socket(settings))]


async def event_socket(settings: FreeSwitchSettings) -> Finding:
    if settings.esl_password is None:
        return fail("FREESWITCH_ESL_PASSWORD unset: no texts reach the SIP phones",
                    "set it to the `password` of FreeSWITCH's event_socket.conf.xml")
    where = f"FreeSWITCH event socket {settings.esl_host}:{settings.esl_port}"
    timeout = min(settings.timeout, 10.0)
    try:
        answer = await api_once(settings.esl_host, settings.esl_port,
                                settings.esl_password.get_secret_value(),
                                "module_exists mod_sms", timeout)
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
    if answer.strip() != "true":
        return warn(f"{where} took the password, but mod_sms is not loaded: SMS::SEND_MESSAGE "
                    "would go nowhere", "load mod_sms (modules.conf.xml) in FreeSWITCH")
    return ok(f"{where} took the password; mod_sms is loaded")
