"""The embedded nats-server takes only clients with its generated secret (kept 0600 in
the data dir, never on a command line); the gateway and `pbxsms doctor` use it."""

from __future__ import annotations

import stat
from pathlib import Path

import nats
import pytest
from nats.errors import Error as NatsError

from pbxsms.bus.embedded import EmbeddedNats, embedded_url
from tests.helpers import free_port


async def test_a_client_without_the_secret_is_refused(tmp_path: Path) -> None:
    port = free_port()
    server = EmbeddedNats(port, tmp_path / "nats")
    await server.start()
    try:
        secret_files = [path for path in (tmp_path / "nats").iterdir()
                        if path.is_file() and server.token in path.read_text()]
        assert secret_files, "the secret is kept in the data dir"
        for path in secret_files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert server.process is not None
        cmdline = Path(f"/proc/{server.process.pid}/cmdline").read_bytes()
        assert server.token.encode() not in cmdline, "other users can read command lines"
        with pytest.raises((NatsError, OSError)):
            await nats.connect(f"nats://127.0.0.1:{port}", connect_timeout=2,
                               max_reconnect_attempts=0, allow_reconnect=False)
        with pytest.raises((NatsError, OSError)):
            await nats.connect(f"nats://wrong@127.0.0.1:{port}", connect_timeout=2,
                               max_reconnect_attempts=0, allow_reconnect=False)
        # What the gateway and `pbxsms doctor` use: the URL with the secret.
        assert embedded_url(port, tmp_path / "nats") == server.url
        nc = await nats.connect(server.url)
        await nc.jetstream().account_info()
        await nc.close()
    finally:
        await server.stop()
    # A restart keeps the same secret (clients configured with it go on working).
    again = EmbeddedNats(port, tmp_path / "nats")
    await again.start()
    try:
        assert again.token == server.token
    finally:
        await again.stop()
