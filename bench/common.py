"""What the bench needs beside the lab: the interface of a measured cluster, waiting,
HTTP inside a namespace, packet loss between the two nodes (VRRP multicast included)."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from failoverd.lab.netns import CHAIN_IN, CHAIN_OUT, Host, LabError

NODES = ("primary", "standby")
VRRP_GROUP = "224.0.0.18"
VRRP_PROTO = "112"
POLL = 0.02

T = TypeVar("T")


class BenchError(Exception):
    """A step of the bench did not happen in time, or failed."""


def other(node: str) -> str:
    return NODES[1] if node == NODES[0] else NODES[0]


def wait_until(probe: Callable[[], T | None], timeout: float, what: str, poll: float = POLL) -> T:
    """Poll `probe` until it returns something other than None (or False); BenchError after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not within {timeout:g}s")
        time.sleep(poll)


def http_get(host: Host, addr: str, port: int, path: str, timeout: float = 1.0) -> tuple[int, str]:
    """GET http://addr:port/path from inside `host`'s namespace: (status, body)."""
    with host.entered():
        conn = http.client.HTTPConnection(addr, port, timeout=timeout)
        try:
            conn.connect()  # the socket is made here, inside the namespace
        except BaseException:
            conn.close()
            raise
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def http_json(host: Host, addr: str, port: int, path: str) -> Any:
    """The JSON body of a GET, or None if the server cannot be reached or answers otherwise."""
    try:
        status, body = http_get(host, addr, port, path)
    except OSError:
        return None
    if status != 200:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class RoleChange:
    """A node entered (serving=True) or left (serving=False) the serving role."""

    node: str
    at: float  # monotonic
    serving: bool
    detail: str


class Cluster(Protocol):
    """A two-node failover system running in a lab, as the bench drives it."""

    system: str  # "failoverd" / "keepalived"
    profile: str  # "default" / "fast"
    loss: float  # the packet loss of its false-failover run
    dir: Path  # its configs, logs and state, inside the lab's run directory
    trials_only: bool  # an extra for comparison: failover trials only

    def start(self) -> None:
        """Start everything; return once one node serves."""

    def settle(self, timeout: float) -> str:
        """Wait until one node serves and the other is ready to take over; the serving node."""

    def client_target(self) -> tuple[str, int]:
        """Where the client connects: HAProxy's frontend or the VIP."""

    def kill(self, node: str) -> None:
        """SIGKILL the node's daemon and its service (POP3)."""

    def restart(self, node: str) -> None:
        """Start the daemon of a node killed by `kill` again."""

    def daemon_pids(self, node: str) -> dict[str, int]:
        """The node's daemon processes, by role ("failoverd", "keepalived", "vrrp", ...)."""

    def witness_pids(self) -> dict[str, int]:
        """Processes of the system outside the two nodes (failoverd's witness), if any."""

    def role_changes(self) -> list[RoleChange]:
        """Every role change so far, in order: a node starting or stopping its service."""

    def attempts(self, start: float, end: float) -> int | None:
        """Takeovers begun in [start, end] whether or not they started anything (None: the
        system has no such step)."""

    def settings(self) -> dict[str, Any]:
        """What was configured, for the report."""

    def phases(self, node: str, since: float) -> dict[str, float]:
        """When `node` passed the steps of its takeover, in seconds after `since`."""

    def diagnose(self) -> dict[str, Any]:
        """What the nodes say about themselves now, for a trial that went wrong."""

    def close(self) -> None:
        """Stop the system's processes (the lab's teardown kills what is left)."""


class Loss:
    """Random loss between two hosts, both ways, as iptables rules on `a`.

    Like `failoverd.lab.faults.Faults.loss`, but it also drops VRRP
    advertisements `a` multicasts (to 224.0.0.18, not to `b`'s address), so
    that keepalived's traffic between the nodes is hit as failoverd's is.
    """

    def __init__(self, a: Host, b: Host, probability: float) -> None:
        if not 0 < probability <= 1:
            raise ValueError(f"probability must be in (0, 1], got {probability}")
        stat = f"-m statistic --mode random --probability {probability:.6f}"
        tag = "-m comment --comment bench-loss -j DROP"
        self.host = a
        self.probability = probability
        self.rules = [
            f"{CHAIN_OUT} -d {b.addr} {stat} {tag}",
            f"{CHAIN_OUT} -p {VRRP_PROTO} -d {VRRP_GROUP} {stat} {tag}",
            f"{CHAIN_IN} -s {b.addr} {stat} {tag}",
        ]
        self.active = False

    def _apply(self, op: str) -> None:
        lines = "\n".join(f"{op} {rule}" for rule in self.rules)
        self.host.exec(
            ["iptables-restore", "-w", "5", "--noflush"], input=f"*filter\n{lines}\nCOMMIT\n"
        )

    def __enter__(self) -> Loss:
        self._apply("-A")
        self.active = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.active:
            self.active = False
            try:
                self._apply("-D")
            except LabError:
                if not exc[0]:
                    raise

    def dropped(self) -> int:
        """Packets dropped by these rules so far (from iptables' counters)."""
        total = 0
        for chain in (CHAIN_IN, CHAIN_OUT):
            out = self.host.exec(["iptables", "-w", "5", "-nvxL", chain]).stdout
            for line in out.splitlines():
                if "bench-loss" in line:
                    total += int(line.split()[0])
        return total
