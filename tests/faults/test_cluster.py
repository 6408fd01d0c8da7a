"""Cluster: three nats-servers (the same binary) as a JetStream cluster with replicated
streams (`[bus] replicas = 3`), two pbxsms instances sharing its consumers, webhooks
spread over both as a load balancer would. Under load one nats node and one pbxsms
instance are killed with SIGKILL: nothing is lost, the work continues on the survivors,
and the only second deliveries allowed are those the killed instance had in flight.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from pbxsms.bus.embedded import nats_server_binary
from pbxsms.sim.mobileapp import MobileAppSimulator
from tests.faults.support import (
    FULL,
    MAX_IN_FLIGHT,
    ClickSendPoster,
    GatewayProc,
    Sinks,
    Webhook,
    add_result,
    bodies,
    fault_env,
    gateway_toml,
    measure,
)
from tests.helpers import free_port, wait_until
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.faults

LOAD = 2000 if FULL else 400

NODE = """server_name: n{index}
listen: 127.0.0.1:{port}
jetstream {{
  store_dir: "{store}"
}}
cluster {{
  name: pbxsms-faults
  listen: 127.0.0.1:{cluster_port}
  authorization {{
    user: route
    password: faults-route-password
  }}
  routes: [{routes}]
}}
"""


class NatsCluster:
    """Three JetStream nodes on loopback, configured as deploy/nats/node*.conf are (route
    authorization included; TLS left out on loopback, tests/bus/test_cluster_configs.py
    checks the samples' TLS)."""

    def __init__(self, base: Path) -> None:
        self.ports = [free_port() for _ in range(3)]
        cluster_ports = [free_port() for _ in range(3)]
        routes = ", ".join(f"nats-route://route:faults-route-password@127.0.0.1:{port}"
                           for port in cluster_ports)
        self.configs: list[Path] = []
        for index in range(3):
            config = base / f"n{index + 1}.conf"
            config.write_text(NODE.format(index=index + 1, port=self.ports[index],
                                          store=base / f"n{index + 1}",
                                          cluster_port=cluster_ports[index], routes=routes))
            self.configs.append(config)
        self.procs = [subprocess.Popen([nats_server_binary(), "-c", str(config)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                      for config in self.configs]

    @property
    def url(self) -> str:
        return ",".join(f"nats://127.0.0.1:{port}" for port in self.ports)

    async def wait_ready(self) -> None:
        async def jetstream_up() -> bool:
            try:
                nc = await nats.connect(self.url.split(","), connect_timeout=1,
                                         max_reconnect_attempts=0)
            except Exception:
                return False
            try:
                await nc.jetstream().account_info()
                return True
            except Exception:
                return False
            finally:
                await nc.close()

        await wait_until(jetstream_up, 60, "the JetStream cluster to elect a leader")

    def kill(self, index: int) -> None:
        self.procs[index].send_signal(signal.SIGKILL)
        self.procs[index].wait(10)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    nodes = NatsCluster(tmp_path)
    yield nodes
    nodes.stop()


async def test_a_nats_node_and_a_gateway_die_under_load(
    tmp_path: Path, cluster: NatsCluster, app: MobileAppSimulator, smtp: SmtpServer
) -> None:
    await cluster.wait_ready()
    toml = gateway_toml("replicas = 3")
    gateways = [GatewayProc(tmp_path / f"gw{index}", toml, fault_env(app, smtp),
                            nats_url=cluster.url) for index in range(2)]
    try:
        for gateway in gateways:
            await asyncio.to_thread(gateway.start)
        sent = bodies("cluster", LOAD)
        hooks = [Webhook(body) for body in sent]
        poster = ClickSendPoster(*(gateway.url for gateway in gateways))
        load = asyncio.create_task(poster.deliver(hooks, deadline=600))
        await wait_until(lambda: poster.accepted >= LOAD // 3 and len(app.pushes) > 0,
                         120, "a third of the load accepted")
        accepted_at_kill = poster.accepted
        started = time.monotonic()
        cluster.kill(2)
        await asyncio.to_thread(gateways[1].kill, False)
        await load
        # Work continues on the survivors: a second wave, posted after the kills (its
        # attempts at the dead gateway fail and are retried, as ClickSend would).
        wave = bodies("cluster-after", LOAD // 10)
        await poster.deliver([Webhook(body) for body in wave], deadline=120)
        sent += wave
        sinks = Sinks(app, smtp)
        await wait_until(lambda: sinks.all_delivered(sent), 300 if FULL else 120,
                         "every message at the app and by email")
        result = add_result(measure(
            "cluster", "3-node JetStream cluster (R3), 2 gateways; one nats node and one "
            "gateway killed (-9) under load", sinks, sent, bound=2 * MAX_IN_FLIGHT,
            notes=f"({len(sent) - accepted_at_kill} webhooks accepted after the kills; "
                  f"drained {time.monotonic() - started:.0f} s after the kills)."))
        assert result.lost == 0
        app_dups = sum(n - 1 for n in sinks.app_counts().values() if n > 1)
        mail_dups = sum(n - 1 for n in sinks.mail_counts().values() if n > 1)
        assert app_dups <= MAX_IN_FLIGHT and mail_dups <= MAX_IN_FLIGHT, (app_dups, mail_dups)
        for gateway in gateways:
            gateway.assert_log_clean(sent)
    finally:
        for gateway in gateways:
            await asyncio.to_thread(gateway.stop)
