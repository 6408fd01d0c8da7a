"""`pbxsms doctor` for email: does the SMTP server greet us, and take our login?"""

from __future__ import annotations

import aiosmtplib

from pbxsms.core.plugin_api import Check, Config, Finding, fail, ok, warn
from pbxsms.plugins.email.settings import EmailSettings


def checks(config: Config) -> list[Check]:
    settings = config.plugin("email", EmailSettings)
    return [Check("email", lambda: smtp(settings))]


async def smtp(settings: EmailSettings) -> Finding:
    if not settings.host:
        return warn("PBXSMS_SMTP_HOST unset: no email copies are sent",
                    "set PBXSMS_SMTP_HOST (and _PORT, _FROM, _USERNAME, _PASSWORD, _STARTTLS)")
    where = f"SMTP {settings.host}:{settings.port}"
    client = aiosmtplib.SMTP(
        hostname=settings.host, port=settings.port, timeout=min(settings.timeout, 10.0),
        start_tls=settings.starttls, username=settings.username,
        password=settings.password.get_secret_value() if settings.password else None)
    try:
        async with client:  # connects, EHLO, STARTTLS and AUTH as configured
            await client.ehlo()
    except aiosmtplib.SMTPAuthenticationError as error:
        return fail(f"{where} refused the login: {error.code} {error.message}",
                    "check PBXSMS_SMTP_USERNAME and PBXSMS_SMTP_PASSWORD")
    except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPConnectTimeoutError) as error:
        return fail(f"cannot reach {where}: {error}",
                    "check PBXSMS_SMTP_HOST and PBXSMS_SMTP_PORT, and that the server runs")
    except aiosmtplib.SMTPException as error:
        return fail(f"{where}: {error}",
                    "check PBXSMS_SMTP_STARTTLS (and the port: 587 with STARTTLS, 25 without)")
    except OSError as error:
        return fail(f"cannot reach {where}: {error}",
                    "check PBXSMS_SMTP_HOST and PBXSMS_SMTP_PORT, and that the server runs")
    login = f", logged in as {settings.username}" if settings.username else ""
    return ok(f"{where} answered EHLO{login}")
