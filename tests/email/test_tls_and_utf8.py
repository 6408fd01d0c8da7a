"""SMTP over implicit TLS (port 465 style) with a CA file, and addresses whose local part
is not ASCII: sent with SMTPUTF8 where the server offers it, refused clearly where not."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest

from pbxsms.core.model.events import State
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.helpers import free_port
from tests.support.delivery import (
    bus_toml,
    delivery_env,
    inject_inbound,
    routed_inbound,
    wait_channel,
)
from tests.support.gateway import StartGateway
from tests.support.smtp import SmtpServer

PLAIN, UTF8 = "desk@example.com", "josé@example.com"


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made for this test."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


async def test_implicit_tls_and_an_smtputf8_address(
        start_gateway: StartGateway, app: MobileAppSimulator,
        certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = SmtpServer(free_port(), ssl_context=context, enable_SMTPUTF8=True)
    await server.start()
    try:
        env = delivery_env(app, server, PBXSMS_SMTP_TLS="true",
                           PBXSMS_SMTP_CA_FILE=str(cert))
        gateway = await start_gateway(toml=bus_toml(), env=env)
        message = routed_inbound("over TLS", emails=(PLAIN, UTF8))
        await inject_inbound(gateway.runtime, message)
        await wait_channel(gateway.runtime, message.id, "email", State.DELIVERED)
        (mail,) = server.mailbox.mails
        assert sorted(mail.rcpt_tos) == sorted([PLAIN, UTF8])
        assert mail.message["To"] == PLAIN  # the UTF-8 address by the envelope only
    finally:
        await server.stop()


async def test_a_server_without_smtputf8_gets_the_ascii_addresses_only(
        start_gateway: StartGateway, app: MobileAppSimulator) -> None:
    smtp = SmtpServer(free_port(), enable_SMTPUTF8=False)
    await smtp.start()
    try:
        gateway = await start_gateway(toml=bus_toml(max_deliver=2),
                                      env=delivery_env(app, smtp))
        message = routed_inbound("plain SMTP", emails=(PLAIN, UTF8))
        await inject_inbound(gateway.runtime, message)
        record = await wait_channel(gateway.runtime, message.id, "email", State.FAILED)
    finally:
        await smtp.stop()
    assert [mail.rcpt_tos for mail in smtp.mailbox.mails] == [[PLAIN]]
    reason = record.channels["email"].reason or ""
    assert f"{UTF8}: 553" in reason and "SMTPUTF8" in reason, reason
    assert f"delivered to {PLAIN}" in reason


def test_tls_and_starttls_exclude_each_other() -> None:
    from pydantic import ValidationError

    from pbxsms.plugins.email.settings import EmailSettings
    with pytest.raises(ValidationError, match="exclude each other"):
        EmailSettings(tls=True, starttls=True)
