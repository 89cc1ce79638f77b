"""A real two-node Ray cluster on this machine, for the job tests over the `ray` backend.

Ray's processes listen on every interface whatever --node-ip-address says, so the suite runs in a network
namespace of its own (`enter_network_namespace`, called by tests/conftest.py before any test): only a loopback
interface, nothing reachable from outside and nothing outside reachable. The cluster is a head (the dashboard
whose Jobs API the backend talks to) and a second node, each with one CPU, started with `ray start` and
stopped with `ray stop --force` when the session ends.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.ports import free_port

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def enter_network_namespace() -> str | None:
    """Move this process (and every process it starts from now on) into a new network namespace with its loopback
    up. Returns None on success, else why it could not (not Linux, not root, a container that forbids it)."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        return f"unshare(CLONE_NEWNET) failed: {os.strerror(err)} (needs root or CAP_SYS_ADMIN)"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP, b""))
    return None


def only_loopback() -> bool:
    """Whether this process sees no network interface but loopback (the namespace above)."""
    return sorted(name for _, name in socket.if_nameindex()) == ["lo"]


def _raylets() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "raylet":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@dataclass
class RayCluster:
    """`ray start` a head and `workers` more nodes of `cpus` CPUs each; `address` is the dashboard's."""

    cpus: int = 1
    workers: int = 1
    ray: str = field(default_factory=lambda: str(Path(sys.executable).with_name("ray")))
    temp_dir: str = ""
    gcs_port: int = 0
    address: str = ""
    node_raylets: list[int] = field(default_factory=list)  # the raylet pid of each node but the head

    def start(self, timeout: float = 180.0) -> RayCluster:
        # a short path: Ray's unix sockets live under it, and their names may not exceed 107 bytes
        self.temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
        self.gcs_port, dashboard = free_port(), free_port()
        self.address = f"http://127.0.0.1:{dashboard}"
        common = ["--node-ip-address=127.0.0.1", f"--num-cpus={self.cpus}", "--num-gpus=0",
                  "--object-store-memory=100000000", "--disable-usage-stats"]
        self._run("start", "--head", f"--port={self.gcs_port}", "--dashboard-host=127.0.0.1",
                  f"--dashboard-port={dashboard}", "--include-dashboard=true", f"--temp-dir={self.temp_dir}", *common)
        self._common = common
        for _ in range(self.workers):
            self.add_node()
        self.wait_for_nodes(1 + self.workers, timeout)
        return self

    def add_node(self) -> int:
        """Start one more node; returns its raylet's pid."""
        before = set(_raylets())
        self._run("start", f"--address=127.0.0.1:{self.gcs_port}", *self._common)
        (pid,) = set(_raylets()) - before
        self.node_raylets.append(pid)
        return pid

    def kill_node(self, raylet: int) -> None:
        """SIGKILL a node's raylet, as a machine that dies: its workers go with it, and the head notices."""
        os.kill(raylet, signal.SIGKILL)
        self.node_raylets.remove(raylet)

    def _run(self, *args: str) -> None:
        # a lost node is noticed in about two seconds, not Ray's default half a minute
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_health_check_period_ms": "500",
               "RAY_health_check_timeout_ms": "1000", "RAY_health_check_failure_threshold": "3"}
        done = subprocess.run([self.ray, *args], env=env, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"ray {' '.join(args[:2])} failed ({done.returncode}):\n{done.stderr[-2000:]}")

    def nodes(self) -> list:
        from ray.util.state import list_nodes

        return list_nodes(address=self.address, filters=[("state", "=", "ALIVE")], raise_on_missing_output=False)

    def wait_for_nodes(self, n: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if len(self.nodes()) >= n:
                    return
            except Exception:  # the dashboard is still starting
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Ray cluster has fewer than {n} live nodes after {timeout} s")
            time.sleep(0.5)

    def stop(self) -> None:
        try:
            self._run("stop", "--force")
        finally:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
