"""The measurements, the same for every system: failover trials, false failovers, footprint."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import pyspy
from bench.common import NODES, BenchError, Cluster, Loss, RoleChange, other
from bench.procstat import measure
from failoverd.lab.client import ClientLog, Pop3Client
from failoverd.lab.faults import Faults
from failoverd.lab.netns import LabError, Topology

# The client: several probe processes started a little apart, each logging in on a
# new connection every CLIENT_INTERVAL. A login whose SYN went into a black hole (a
# cut link, a stale ARP entry) blocks its probe until CLIENT_TIMEOUT; the others go on.
CLIENTS = 4
CLIENT_INTERVAL = 0.08  # each probe's; together one login every 20 ms
CLIENT_TIMEOUT = 0.3
TRIAL_LIMIT = 60.0  # the longest a trial may take before it counts as failed
FAULTS = ("kill", "cut")

Log = Callable[[str], None]


class Clients:
    """`CLIENTS` POP3 probes in the client host, staggered; their logs merged."""

    def __init__(self, lab: Topology, target: tuple[str, int], out: Path) -> None:
        self.probes = [
            Pop3Client(
                lab.client,
                target,
                out.with_name(f"{out.stem}-{k}.jsonl"),
                nodes=NODES,
                interval=CLIENT_INTERVAL,
                timeout=CLIENT_TIMEOUT,
                max_seconds=TRIAL_LIMIT + 30,
            )
            for k in range(CLIENTS)
        ]

    def __enter__(self) -> Clients:
        for probe in self.probes:
            probe.start()
            time.sleep(CLIENT_INTERVAL / CLIENTS)
        return self

    def __exit__(self, *exc: object) -> None:
        for probe in self.probes:
            probe.stop(2.0)

    def log(self) -> ClientLog:
        return ClientLog(a for probe in self.probes for a in probe.log())

    def wait_for(self, predicate: Callable[[ClientLog], bool], timeout: float) -> ClientLog:
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()
            if predicate(log):
                return log
            if not any(p.running for p in self.probes):
                raise BenchError("every client probe has ended")
            if time.monotonic() > deadline:
                raise BenchError(f"client: condition not met within {timeout:g}s")
            time.sleep(0.02)


@dataclass
class Trial:
    fault: str
    victim: str
    seconds: float | None  # None: no answer from the other node within TRIAL_LIMIT
    errors: int  # failed logins between the fault and the first answer
    old_node_answers: int  # answers by the victim after the fault (should be 0)
    phases: dict[str, float] = field(default_factory=dict)  # the survivor's takeover steps
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "fault": self.fault,
            "victim": self.victim,
            "seconds": None if self.seconds is None else round(self.seconds, 4),
            "errors": self.errors,
            "old_node_answers": self.old_node_answers,
            "phases": self.phases,
            "note": self.note,
        }


@dataclass
class FalseFailovers:
    kind: str  # "loss" / "sigstop"
    detail: str
    seconds: float
    runs: int
    changes: list[RoleChange] = field(default_factory=list)
    dropped: int | None = None
    attempts: int | None = None  # takeovers begun, abandoned or not (failoverd)
    both_serving: float = 0.0  # seconds during which both nodes ran the service

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "detail": self.detail,
            "seconds": self.seconds,
            "runs": self.runs,
            "role_changes": len(self.changes),
            "changes": [
                {"node": c.node, "at": round(c.at, 3), "serving": c.serving, "detail": c.detail}
                for c in self.changes
            ],
            "dropped_packets": self.dropped,
            "takeover_attempts": self.attempts,
            "both_serving_seconds": round(self.both_serving, 3),
        }


def both_serving(changes: list[RoleChange], active: str, start: float, end: float) -> float:
    """Seconds of [start, end] during which both nodes served, `active` serving at `start`."""
    serving = {node: node == active for node in NODES}
    since = start
    total = 0.0
    for change in sorted(changes, key=lambda c: c.at):
        if all(serving.values()):
            total += change.at - since
        serving[change.node] = change.serving
        since = change.at
    if all(serving.values()):
        total += end - since
    return total


class Runner:
    """The measurements on one running cluster in one lab."""

    def __init__(self, cluster: Cluster, lab: Topology, log: Log) -> None:
        self.cluster = cluster
        self.lab = lab
        self.faults = Faults(lab)
        self.log = log
        self.name = f"{cluster.system} {cluster.profile}"

    def failover_trial(self, fault: str, out: Path) -> Trial:
        """One fault on the serving node; the time until the other node answers a client."""
        cluster, lab = self.cluster, self.lab
        victim = cluster.settle(120.0)
        survivor = other(victim)
        with Clients(lab, cluster.client_target(), out) as clients:
            clients.wait_for(lambda log: len([a for a in log.ok if a.node == victim]) >= 3, 15.0)
            injected = None
            t0 = time.monotonic()
            if fault == "kill":
                cluster.kill(victim)
            else:
                injected = self.faults.link_down(lab[victim])
            try:
                log = clients.wait_for(
                    lambda log: log.first_answer(t0, survivor) is not None, TRIAL_LIMIT
                )
                took = log.time_to_answer(t0, survivor)
                note = ""
            except BenchError as e:
                log, took, note = clients.log(), None, str(e)
                self.log(f"  {self.name} {fault}: no answer; the nodes say {cluster.diagnose()}")
            first = log.first_answer(t0, survivor)
            until = first.start if first is not None else float("inf")
            failed = len(log.between(t0, until).failed)
            late = len([a for a in log.between(t0).ok if a.node == victim])
        phases = cluster.phases(survivor, t0)
        if first is not None:
            phases["answered"] = round(first.end - t0, 4)
        if fault == "kill":
            cluster.restart(victim)
        elif injected is not None:
            self.faults.heal(injected)
        return Trial(fault, victim, took, failed, late, phases, note)

    def failover_trials(self, fault: str, n: int) -> list[Trial]:
        trials = []
        slug = f"{self.cluster.system}-{self.cluster.profile}-{fault}"
        for i in range(n):
            out = self.lab.run_dir / "clients" / f"{slug}-{i}.jsonl"
            out.parent.mkdir(parents=True, exist_ok=True)
            trial = self.failover_trial(fault, out)
            trials.append(trial)
            shown = "none" if trial.seconds is None else f"{trial.seconds:.3f}s"
            steps = ", ".join(f"{k} {v:.3f}" for k, v in trial.phases.items())
            self.log(
                f"  {self.name} {fault} #{i + 1}/{n}: {trial.victim} -> {other(trial.victim)} "
                f"answered after {shown} ({trial.errors} failed logins; {steps})"
            )
        return trials

    def _changes(self, start: float, end: float) -> list[RoleChange]:
        return [c for c in self.cluster.role_changes() if start <= c.at <= end]

    def loss_run(self, seconds: float, grace: float) -> FalseFailovers:
        """Both nodes healthy, random loss between them for `seconds`: role changes."""
        cluster = self.cluster
        active = cluster.settle(120.0)
        start = time.monotonic()
        with Loss(self.lab.primary, self.lab.standby, cluster.loss) as loss:
            deadline = start + seconds
            while (left := deadline - time.monotonic()) > 0:
                time.sleep(min(30.0, left))
                n = len(self._changes(start, time.monotonic()))
                self.log(f"  {self.name} loss: {max(0.0, left - 30):.0f}s left, {n} role changes")
            dropped = loss.dropped()
        time.sleep(grace)  # a decision taken during the loss may show a little later
        end = time.monotonic()
        changes = self._changes(start, end)
        detail = f"{cluster.loss:.0%} loss between primary and standby, both ways"
        return FalseFailovers(
            "loss", detail, seconds, 1, changes, dropped, cluster.attempts(start, end),
            both_serving(changes, active, start, end),
        )  # fmt: skip

    def sigstop_runs(self, runs: int, seconds: float, grace: float) -> FalseFailovers:
        """SIGSTOP every daemon process of the standby for `seconds`, then SIGCONT."""
        changes: list[RoleChange] = []
        attempts: int | None = None
        overlap = 0.0
        for i in range(runs):
            active = self.cluster.settle(120.0)
            standby = other(active)
            start = time.monotonic()
            pids = self.cluster.daemon_pids(standby).values()
            stopped = [self.faults.sigstop(pid) for pid in pids]
            try:
                time.sleep(seconds)
            finally:
                for fault in stopped:
                    self.faults.heal(fault)
            time.sleep(grace)
            end = time.monotonic()
            found = self._changes(start, end)
            changes += found
            overlap += both_serving(found, active, start, end)
            tried = self.cluster.attempts(start, end)
            if tried is not None:
                attempts = (attempts or 0) + tried
            self.log(f"  {self.name} SIGSTOP #{i + 1}/{runs}: {len(found)} role changes")
        detail = f"the standby's daemon stopped for {seconds:g}s"
        return FalseFailovers("sigstop", detail, seconds, runs, changes, None, attempts, overlap)

    def footprint(self, seconds: float, profile_seconds: float = 0.0) -> dict[str, Any]:
        """Idle CPU and RSS of every daemon process of the system over `seconds`; then, with
        `profile_seconds`, py-spy samples of the failoverd processes (after the window)."""
        active = self.cluster.settle(120.0)
        pids: dict[str, int] = {}
        for node, role in ((active, "active"), (other(active), "standby")):
            for name, pid in self.cluster.daemon_pids(node).items():
                pids[f"{name} ({role})"] = pid
        pids.update(self.cluster.witness_pids())
        window = measure(pids, seconds)
        result: dict[str, Any] = {
            "seconds": seconds,
            "processes": {name: u.as_dict() for name, u in window.usage.items()},
            "machine_cpu_percent": round(window.machine_cpu_percent, 1),
            "loadavg": window.loadavg,
        }
        spied = {name: pid for name, pid in pids.items() if name.startswith("failoverd")}
        if profile_seconds and spied:
            out = self.cluster.dir / "py-spy"
            files = pyspy.record(spied, profile_seconds, out)
            result["py_spy"] = {
                name: pyspy.summarize(path, window.usage[name].cpu_percent)
                for name, path in files.items()
            }
            result["py_spy_seconds"] = profile_seconds
        return result


@contextlib.contextmanager
def running(cluster: Cluster) -> Iterator[Cluster]:
    cluster.start()
    try:
        yield cluster
    finally:
        with contextlib.suppress(LabError, OSError):
            cluster.close()
