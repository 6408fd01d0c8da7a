"""`pbxsms doctor` for email: does the SMTP server greet us, and take our login?"""

from __future__ import annotations

import asyncio

import aiosmtplib

from pbxsms.core.plugin_api import Check, Config, Finding, fail, ok
from pbxsms.plugins.email.settings import EmailSettings

# A doctor run must not hang on a server that accepts and says nothing.
CHECK_TIMEOUT = 3.0


def checks(config: Config) -> list[Check]:
    settings = config.plugin("email", EmailSettings)
    return [Check("email", lambda: smtp(settings))]


async def smtp(settings: EmailSettings) -> Finding:
    if not settings.host:
        # As `config check` judges it (it exits non-zero on it).
        return fail("PBXSMS_SMTP_HOST unset: no email copies are sent",
                    "set PBXSMS_SMTP_HOST (and _PORT, _FROM, _USERNAME, _PASSWORD, _STARTTLS "
                    "or _TLS)")
    where = f"SMTP {settings.host}:{settings.port}"
    client = aiosmtplib.SMTP(
        hostname=settings.host, port=settings.port, timeout=min(settings.timeout, CHECK_TIMEOUT),
        start_tls=settings.starttls, use_tls=settings.tls,
        tls_context=settings.tls_context(), username=settings.username,
        password=settings.password.get_secret_value() if settings.password else None)
    try:
        # aiosmtplib's timeout is per step: the whole check gets the same 3 s.
        async with asyncio.timeout(CHECK_TIMEOUT), client:  # EHLO, STARTTLS, AUTH
            await client.ehlo()
    except TimeoutError:
        return fail(f"{where} did not answer within {CHECK_TIMEOUT:.0f}s",
                    "check PBXSMS_SMTP_HOST and PBXSMS_SMTP_PORT (and PBXSMS_SMTP_STARTTLS)")
    except aiosmtplib.SMTPAuthenticationError as error:
        return fail(f"{where} refused the login: {error.code} {error.message}",
                    "check PBXSMS_SMTP_USERNAME and PBXSMS_SMTP_PASSWORD")
    except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPConnectTimeoutError) as error:
        return fail(f"cannot reach {where}: {error}",
                    "check PBXSMS_SMTP_HOST and PBXSMS_SMTP_PORT, and that the server runs")
    except aiosmtplib.SMTPException as error:
        return fail(f"{where}: {error}",
                    "check PBXSMS_SMTP_STARTTLS and PBXSMS_SMTP_TLS (and the port: 587 with "
                    "STARTTLS, 465 with TLS, 25 without)")
    except OSError as error:
        return fail(f"cannot reach {where}: {error}",
                    "check PBXSMS_SMTP_HOST and PBXSMS_SMTP_PORT, and that the server runs")
    login = f", logged in as {settings.username}" if settings.username else ""
    return ok(f"{where} answered EHLO{login}")
