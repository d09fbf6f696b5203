"""A fake DaemonHandle for the API and CLI tests.

Like the daemon's, its `health()` reads only published values and the
monotonic clock, while `snapshot()` and `operate()` need `main_loop`, a lock
standing for the daemon's main loop: a test that holds it freezes that loop.
"""

import threading
import time
from collections.abc import Mapping
from typing import Any

from failoverd import apiauth
from failoverd.core.events import Operation
from failoverd.runtime.handle import Health, OperationResult

SECRET = b"api-test-secret-0123456789abcdef-" + b"k" * 16
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def status_doc(
    node_state: str = "active",
    peer_state: str | None = "standby",
    *,
    node: str = "cfg1",
    peer: str = "cfg2",
    preference: str = "primary",
    epoch: int = 3,
    phase: str | None = None,
) -> dict[str, Any]:
    """A /status document of the shape the daemon publishes."""
    return {
        "node": {
            "name": node,
            "state": node_state,
            "preference": preference,
            "epoch": epoch,
            "maintenance": False,
            "healthy": True,
            "lease_left": 4.25,
            "lease_voters": [node, "lb"],
            "takeover_phase": phase,
            "last_transition": f"{node} became {node_state}: test",
            "local_checks": [{"name": "pop3-local", "up": True, "detail": "+OK ready"}],
        },
        "peer": {
            "name": peer,
            "state": peer_state,
            "epoch": epoch,
            "age": 0.2,
            "checks_ok": True,
            "maintenance": False,
            "remote_checks": [{"name": "peer-pop3", "up": False, "detail": "connection refused"}],
        },
        "witness": {
            "name": "lb",
            "view_of_peer": {"state": peer_state, "age": 0.3, "checks_ok": True},
        },
        "safety": {"mode": "witness", "summary": "never two active nodes, even when partitioned"},
        "last_failover": {
            "time": "2026-11-24T17:00:00.000Z",
            "reason": "cfg2's pop3 check failed 3 times",
            "duration": 2.5,
        },
        "daemon": {"version": "0.1.0", "pid": 4242, "uptime": 3725.0},
    }


def witness_doc(holder: str | None = "cfg1", quiet_left: float = 0.0) -> dict[str, Any]:
    """A witness's /status document of the shape the witness publishes."""
    return {
        "witness": {
            "name": "lb",
            "vote": {"holder": holder, "epoch": 3, "left": 2.9 if holder else 0.0},
            "max_epoch": 3,
            "quiet_left": quiet_left,
            "nodes": [
                {"name": "cfg1", "state": "active", "epoch": 3, "age": 0.1, "checks_ok": True},
                {"name": "cfg2", "state": "standby", "epoch": 3, "age": 0.4, "checks_ok": None},
            ],
        },
        "daemon": {"version": "0.1.0", "pid": 4343, "uptime": 59.0},
    }


HISTORY = [
    {
        "time": f"2026-11-24T17:00:0{i}.000Z",
        "clock": float(i),
        "node": "cfg1",
        "kind": "transition",
        "reason": f"reason number {i}",
        "epoch": i,
        "from": "standby",
        "to": "active",
        "details": {},
    }
    for i in range(5)
]


class FakeHandle:
    def __init__(self, keys: bytes | tuple[bytes, ...] = SECRET) -> None:
        self.keys = keys
        self.main_loop = threading.Lock()
        self.serve_until: float | None = None
        self.reason = "standby: cfg2 is active"
        self.result = OperationResult(True, "done")
        self.snapshots: list[Mapping[str, Any]] = [status_doc()]
        self.operations: list[tuple[Operation, float]] = []
        self.operate_entered = threading.Event()
        self.limits: list[int | None] = []
        self.accepts: list[str] = []

    def health(self) -> Health:
        until = self.serve_until
        if until is None:
            return Health(False, self.reason)
        if time.monotonic() >= until:
            return Health(False, "lease expired: not renewed in time")
        return Health(True, "active")

    def snapshot(self) -> Mapping[str, Any]:
        """The next of `snapshots`; the last one stays."""
        with self.main_loop:
            return self.snapshots.pop(0) if len(self.snapshots) > 1 else self.snapshots[0]

    def operate(self, op: Operation, timeout: float) -> OperationResult:
        self.operate_entered.set()
        if not self.main_loop.acquire(timeout=timeout):
            return OperationResult(False, "the daemon did not answer in time")
        try:
            self.operations.append((op, timeout))
            return self.result
        finally:
            self.main_loop.release()

    def history(self, limit: int | None) -> list[dict[str, Any]]:
        self.limits.append(limit)
        return HISTORY if limit is None else HISTORY[len(HISTORY) - min(limit, len(HISTORY)) :]

    def explain(self) -> list[str]:
        return ["cfg1 is active: it holds the lease (cfg1, lb).", "Its checks pass."]

    def metrics(self, accept: str) -> tuple[bytes, str]:
        self.accepts.append(accept)
        return b"failoverd_epoch 3\n", METRICS_TYPE

    def verify(self, method: str, path: str, body: bytes, header: str | None) -> bool:
        return apiauth.verify(self.keys, method, path, body, header, now=time.time())
