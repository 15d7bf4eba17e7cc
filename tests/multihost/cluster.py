"""N receiver instances on N hosts behind one load balancer: start, kill -9, restart, stop.

::

    with Cluster(workdir, hosts=3, app="faults.fault_app:app", env=env,
                 relays={"redis": 6379, "acks": proxy_port}) as cluster:
        cluster.balancer_url        # the one subscriber URL for the dev server
        cluster.service_url("redis")  # host:port the instances use for a relayed service
        cluster.kill9(2); cluster.restart(2)
        cluster.direct_url(3)       # one chosen instance (its /_health, its /_ack)

Each instance is ``uvicorn APP`` on its host's address (port 8000), in its own network
namespace and under its own hostname (see :mod:`.netns`); ``FAULT_HOST``/``MH_HOST`` tell it
its name. ``env`` may be a function of the cluster, called once the network exists (to name
``service_url(...)`` addresses). The gateway subprocess (:mod:`.gateway`) is the load
balancer, the direct ports and the relays to the services on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from faults.processes import Process, python_path
from support import wait_until

from .netns import Network, make_network

INSTANCE_PORT = 8000


class Cluster:
    def __init__(
        self,
        workdir: Path,
        *,
        hosts: int,
        app: str,
        env: dict[str, str] | Callable[[Cluster], dict[str, str]],
        relays: dict[str, int],
        prefer_netns: bool = True,
    ) -> None:
        self.workdir = workdir
        self.hosts_wanted = hosts
        self.app = app
        self.env_for = env if callable(env) else (lambda _: env)
        self.env: dict[str, str] = {}
        self.relays = relays  # name -> port on 127.0.0.1 the instances must reach
        self.prefer_netns = prefer_netns
        self.network: Network | None = None
        self.gateway: Process | None = None
        self.instances: list[Process] = []
        self.ports: dict[str, Any] = {}
        self.balancer_log = workdir / "balancer.jsonl"
        self.killed_pids: set[int] = set()

    # --- addresses ------------------------------------------------------------------------

    @property
    def balancer_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['balancer']}"

    def direct_url(self, host: int) -> str:
        """The URL of instance ``host`` (1-based), reached from this machine."""
        return f"http://127.0.0.1:{self.ports['direct'][host - 1]}"

    def service_url(self, name: str) -> str:
        """``host:port`` at which the instances reach relayed service ``name``."""
        assert self.network is not None
        return f"{self.network.service_address}:{self.relays[name]}"

    def describe(self) -> str:
        return self.network.describe() if self.network else "(no network)"

    # --- life -----------------------------------------------------------------------------

    def start(self) -> Cluster:
        self.network = make_network(self.hosts_wanted, prefer_netns=self.prefer_netns)
        self._start_gateway()
        self.env = self.env_for(self)  # may use service_url(): the network exists now
        for host in self.network.hosts:
            self.instances.append(self._instance(host.index))
        for instance in self.instances:
            instance.start()
        return self

    def _start_gateway(self) -> None:
        assert self.network is not None
        ready = self.workdir / "gateway.json"
        ready.unlink(missing_ok=True)
        relays = []
        if self.network.kind == "netns":
            relays = [
                [self.network.service_address, port, "127.0.0.1", port]
                for port in self.relays.values()
            ]
        config = {
            "lan_netns": self.network.lan_netns,
            "backends": [[h.address, INSTANCE_PORT] for h in self.network.hosts],
            "relays": relays,
            "log": str(self.balancer_log),
            "ready": str(ready),
        }
        path = self.workdir / "gateway-config.json"
        path.write_text(json.dumps(config))
        env = {**os.environ, "PYTHONPATH": python_path()}
        argv = [sys.executable, "-m", "multihost.gateway", str(path)]
        self.gateway = Process(argv, env, None, name="gateway")
        self.gateway.start()
        wait_until(
            ready.exists, 30, "the gateway to listen", interval=0.02, report=self.gateway.tail
        )
        self.ports = json.loads(ready.read_text())

    def _instance(self, index: int) -> Process:
        assert self.network is not None
        host = self.network.hosts[index - 1]
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            self.app,
            "--host",
            host.address,
            "--port",
            str(INSTANCE_PORT),
            "--log-level",
            "warning",
        ]
        env = {
            **os.environ,
            **self.env,
            "PYTHONPATH": python_path(),
            "FAULT_HOST": host.name,
            "MH_HOST": host.name,
        }
        health = f"{self.direct_url(index)}/ironmq/_health"
        return Process(host.argv(argv), env, health, name=f"instance-{index}")

    def kill9(self, host: int) -> int:
        pid = self.instances[host - 1].kill9()
        self.killed_pids.add(pid)
        return pid

    def restart(self, host: int) -> None:
        self.instances[host - 1].start()

    def tails(self) -> str:
        parts = [p.tail(15) for p in self.instances]
        if self.gateway is not None:
            parts.append(self.gateway.tail(10))
        return "\n".join(parts)

    def balancer_entries(self) -> list[dict[str, Any]]:
        if not self.balancer_log.exists():
            return []
        lines = self.balancer_log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def stop(self) -> None:
        for instance in self.instances:
            instance.cleanup()
        if self.gateway is not None:
            self.gateway.cleanup()
        if self.network is not None:
            self.network.close()

    def __enter__(self) -> Cluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
