"""deploy/nats: the cluster's sample configs are valid for nats-server, and their routes
need a password and TLS with a certificate of the operator's CA."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from pbxsms.bus.embedded import nats_server_binary

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "nats"
CONFIGS = sorted(DEPLOY.glob("node*.conf"))


def make_certificates(folder: Path) -> None:
    """A CA and one node certificate signed by it, as docs/scaling.md has the operator do."""
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True,
                       timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=ca",
        "-keyout", "ca-key.pem", "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=nats1.internal",
        "-keyout", "node-key.pem", "-out", "node.csr")
    (folder / "ext.cnf").write_text("subjectAltName=DNS:nats1.internal\n"
                                    "extendedKeyUsage=serverAuth,clientAuth\n")
    run("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
        "-CAcreateserial", "-days", "1", "-extfile", "ext.cnf", "-out", "node.pem")


def test_there_are_three_nodes() -> None:
    assert [path.name for path in CONFIGS] == ["node1.conf", "node2.conf", "node3.conf"]


@pytest.mark.parametrize("config", CONFIGS, ids=[path.name for path in CONFIGS])
def test_routes_need_a_password_and_tls(config: Path, tmp_path: Path) -> None:
    text = config.read_text()
    cluster = text[text.index("cluster {"):text.index("\n}\n", text.index("cluster {"))]
    assert re.search(r"authorization \{\s*user: route\s*password: ROUTE_PASSWORD", cluster)
    assert "verify: true" in cluster and "ca_file:" in cluster
    assert all("route:ROUTE_PASSWORD@" in line for line in cluster.splitlines()
               if "nats-route://" in line)
    # nats-server accepts the file as an operator fills it in.
    make_certificates(tmp_path)
    filled = (text.replace("/etc/nats/tls/", f"{tmp_path}/")
              .replace("/var/lib/nats", str(tmp_path / "store"))
              .replace("ROUTE_PASSWORD", "a-long-random-route-password"))
    (tmp_path / config.name).write_text(filled)
    result = subprocess.run([nats_server_binary(), "-c", str(tmp_path / config.name), "-t"],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PBXSMS_NATS_PASSWORD": "pbxsms-password"})
    assert result.returncode == 0, result.stdout + result.stderr
