"""A real three-node NATS JetStream cluster on loopback, started from the nats-server binary.

Every node gets free client, cluster-route and monitoring ports, its own config file and its own
JetStream store directory under one root; the routes name the other nodes. `NatsCluster` is a
context manager: entering starts the nodes and waits until the cluster has elected a JetStream
meta leader that every node knows (the monitoring endpoint `/jsz`, then `/healthz`); leaving stops
them. `kill9(i)` is a power cut of one node (its store stays on disk), `restart(i)` starts it
again with the same ports and store, so it rejoins and catches up from the others.

Blocking calls (start, restart, waits) are plain functions: an async test calls them through
`asyncio.to_thread` so that its own tasks keep running meanwhile.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from tests.support.waiting import free_port

NATS_SERVER = os.environ.get("TOLLGATE_NATS_SERVER", "/usr/sbin/nats-server")
READY_SECONDS = 60.0


class ClusterFailed(RuntimeError):
    """A node exited or the cluster did not become ready; the message carries the log's tail."""


def nats_server_binary() -> str | None:
    """The nats-server executable, or None when this machine has none."""
    if os.access(NATS_SERVER, os.X_OK):
        return NATS_SERVER
    return shutil.which("nats-server")


def _unique_ports(count: int) -> list[int]:
    """`count` distinct free ports (free_port alone may hand out the same one twice)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


class NatsNode:
    """One nats-server process of the cluster: its ports, config, store and log."""

    def __init__(self, *, name: str, root: Path, ports: tuple[int, int, int]) -> None:
        self.name = name
        self.client_port, self.cluster_port, self.monitor_port = ports
        self.store_dir = root / name / "jetstream"
        self.config_path = root / name / "nats.conf"
        self.log_path = root / name / "nats.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """The client URL of this node."""
        return f"nats://127.0.0.1:{self.client_port}"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None

    def write_config(self, *, cluster_name: str, peers: list["NatsNode"]) -> None:
        """The node's config file: JetStream on disk, a route to every other node."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        routes = ", ".join(f'"nats-route://127.0.0.1:{peer.cluster_port}"' for peer in peers)
        self.config_path.write_text(
            f'server_name: "{self.name}"\n'
            f"listen: 127.0.0.1:{self.client_port}\n"
            f"http: 127.0.0.1:{self.monitor_port}\n"
            "max_payload: 8MB\n"
            "jetstream {\n"
            f'  store_dir: "{self.store_dir}"\n'
            "  max_memory_store: 64MB\n"
            "  max_file_store: 2GB\n"
            "}\n"
            "cluster {\n"
            f'  name: "{cluster_name}"\n'
            f"  listen: 127.0.0.1:{self.cluster_port}\n"
            f"  routes: [{routes}]\n"
            "}\n"
        )

    def start(self, binary: str) -> None:
        """Start the process (its output appended to its log)."""
        if self.running:
            raise ClusterFailed(f"{self.name} is already running")
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [binary, "-c", str(self.config_path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill9(self) -> None:
        """SIGKILL: no flush, no goodbye to the peers, like a power cut."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._close_log()

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM and wait (SIGKILL after `grace` seconds)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.kill9()
        self._close_log()

    def monitor(self, path: str) -> tuple[int, Any]:
        """GET a monitoring endpoint: (HTTP status, decoded JSON); (0, None) when unreachable."""
        url = f"http://127.0.0.1:{self.monitor_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return int(answer.status), json.loads(answer.read())
        except urllib.error.HTTPError as refused:
            with contextlib.suppress(ValueError):
                return int(refused.code), json.loads(refused.read())
            return int(refused.code), None
        except (OSError, ValueError):
            return 0, None

    def meta_leader(self) -> str | None:
        """The JetStream meta leader this node knows of (None: none yet, or node down)."""
        status, body = self.monitor("/jsz")
        if status != 200 or not isinstance(body, dict):
            return None
        leader = (body.get("meta_cluster") or {}).get("leader")
        return str(leader) if leader else None

    def healthy(self) -> bool:
        """`/healthz`: JetStream is up and current with the meta leader and its assets."""
        status, _ = self.monitor("/healthz")
        return status == 200

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the node's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class NatsCluster:
    """A JetStream cluster of `size` nodes on loopback, stores under `root`."""

    def __init__(self, root: Path, *, size: int = 3, name: str = "tollgate-test") -> None:
        binary = nats_server_binary()
        if binary is None:
            raise ClusterFailed(f"no nats-server binary at {NATS_SERVER} or on PATH")
        self.binary = binary
        self.name = name
        ports = _unique_ports(3 * size)
        self.nodes = [
            NatsNode(
                name=f"n{index + 1}",
                root=root,
                ports=(ports[3 * index], ports[3 * index + 1], ports[3 * index + 2]),
            )
            for index in range(size)
        ]
        for node in self.nodes:
            node.write_config(cluster_name=name, peers=[n for n in self.nodes if n is not node])
        self._entered = False

    @property
    def urls(self) -> list[str]:
        """Every node's client URL (a client given all of them fails over between them)."""
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """The comma-separated server list, as `--bus` and TOLLGATE_BUS take it."""
        return ",".join(self.urls)

    def start(self) -> None:
        """Start every node and wait until the cluster is ready."""
        for node in self.nodes:
            node.start(self.binary)
        self.wait_ready()

    def kill9(self, index: int) -> None:
        """SIGKILL node `index` (0-based); its JetStream store stays on disk."""
        self.nodes[index].kill9()

    def restart(self, index: int) -> None:
        """Start node `index` again (same ports, same store) and wait until it is current."""
        node = self.nodes[index]
        if node.running:
            node.stop()
        node.start(self.binary)
        self.wait_ready()

    def wait_ready(self, limit: float = READY_SECONDS) -> None:
        """Until every running node agrees on one meta leader and answers `/healthz` 200."""
        deadline = time.monotonic() + limit
        while True:
            running = [node for node in self.nodes if node.running]
            self._check_alive()
            leaders = {node.meta_leader() for node in running}
            if len(leaders) == 1 and None not in leaders and all(n.healthy() for n in running):
                return
            if time.monotonic() > deadline:
                raise ClusterFailed(
                    f"cluster not ready after {limit}s (meta leaders seen: {leaders}):\n"
                    + self._tails()
                )
            time.sleep(0.1)

    def stream_replicas(self, stream: str) -> dict[str, Any]:
        """What `/jsz?streams=true` of each running node says of `stream`: per node name, its
        state (messages, last_seq) and whether it is the stream's leader."""
        seen: dict[str, Any] = {}
        for node in self.nodes:
            if not node.running:
                continue
            status, body = node.monitor("/jsz?streams=true")
            if status != 200 or not isinstance(body, dict):
                continue
            for account in body.get("account_details") or []:
                for detail in account.get("stream_detail") or []:
                    if detail.get("name") == stream:
                        state = detail.get("state") or {}
                        leader = (detail.get("cluster") or {}).get("leader")
                        seen[node.name] = {
                            "messages": state.get("messages"),
                            "last_seq": state.get("last_seq"),
                            "leader": leader == node.name,
                        }
        return seen

    def wait_stream_current(self, stream: str, limit: float = READY_SECONDS) -> None:
        """Until every running node holds `stream` with the same last sequence (a restarted
        replica has caught up with the leader)."""
        deadline = time.monotonic() + limit
        while True:
            seen = self.stream_replicas(stream)
            running = {node.name for node in self.nodes if node.running}
            last = {replica["last_seq"] for replica in seen.values()}
            if set(seen) == running and len(last) == 1:
                return
            if time.monotonic() > deadline:
                raise ClusterFailed(f"{stream} replicas not current after {limit}s: {seen}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop()

    def _check_alive(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() not in (None, -signal.SIGKILL):
                raise ClusterFailed(
                    f"{node.name} exited with {node.process.returncode}:\n{node.log_tail()}"
                )

    def _tails(self) -> str:
        return "\n".join(f"--- {node.name}\n{node.log_tail()}" for node in self.nodes)

    def __enter__(self) -> Self:
        if self._entered:
            raise ClusterFailed("a NatsCluster is entered once")
        self._entered = True
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
