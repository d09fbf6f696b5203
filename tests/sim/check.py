"""Run one schedule on a `Cluster` and check the invariants, in virtual (real) time.

Every schedule:
- the cores never raise (an exception is reported with the schedule);
- safety (witness and fence modes): the two nodes' services never run at the
  same instant. A service runs from its node's first startup script until its
  last shutdown script has finished, or its host went down (`Cluster.overlaps`).
  In cooperative mode the overlaps are measured instead (`Verdict.overlaps`).
- one script phase at a time on each node, in every mode: a core that starts a
  phase (startup, shutdown, demote, fence) while another still runs breaks its
  own rule, since a running script cannot be called back (`Cluster.script_overlaps`).

Liveness schedules (`Kind.LIVENESS`): the network is clean from the start
(delays within `max_network_delay`, no loss, no cut), scripts succeed within
their budgets, clocks drift within `timing.drift`. By `settle_time` exactly
one node must be active and the other in standby (else: a violation, "did not
settle"). At `trigger_at` the active node fails: its host crashes and stays
down, or its service breaks (its checks fail, the host stays up). The bound is
`core.timing.worst_case(standby's params).seconds`, computed for "active" =
the startup scripts have *finished*: so the check is that the standby's
transition to `active` (not merely its service start, which comes first) happens
within the bound after `trigger_at`. The measured time is kept in
`Verdict.takeover` (service start and active, both after the trigger).

Stability schedules (`Kind.STABILITY`, witness mode): the witness is up and its
links are clean, nobody crashes, every script succeeds and services stay
healthy; only the link between the two nodes suffers (any loss, cuts in one or
both directions). Once a node has become active, it must stay active and the
other node must never start its service.
"""

from __future__ import annotations

import dataclasses
import traceback
from dataclasses import dataclass, field

from failoverd.core.timing import worst_case
from failoverd.core.types import NodeState, SafetyMode
from tests.sim.cluster import NODES, WITNESS, Cluster, other
from tests.sim.schedule import Kind, Schedule, Trigger, settle_time


@dataclass
class Takeover:
    """Seconds from the trigger to the standby's service start and to its being active."""

    started: float | None
    active: float | None
    bound: float


@dataclass
class Verdict:
    schedule: Schedule
    violations: list[str] = field(default_factory=list)
    overlaps: list[tuple[float, float]] = field(default_factory=list)
    takeover: Takeover | None = None
    trace: list[str] = field(default_factory=list)


def build(s: Schedule, *, tracing: bool) -> Cluster:
    """The cluster of a schedule, with its faults queued, before any host starts."""
    c = Cluster(
        s.mode,
        s.setup.timing,
        seed=f"{s.seed}/{s.index}/{s.mode}/run",
        checks=s.setup.checks,
        budgets=s.setup.budgets,
        tracing=tracing,
    )
    for host, rate in s.rates.items():
        if host == WITNESS:
            c.witness.rate = rate
        else:
            c.nodes[host].rate = rate
    c.links.update({k: dataclasses.replace(v) for k, v in s.links.items()})
    for (node, phase), behaviour in s.scripts.items():
        c.nodes[node].scripts[phase] = behaviour
    for host, at in s.starts.items():
        c.at(at, c.start, host)
    for at, fault in s.faults:
        c.at(at, fault.apply, c)
    return c


def run(s: Schedule, *, tracing: bool = False) -> Verdict:
    verdict = Verdict(s)
    c = build(s, tracing=tracing)
    if tracing:
        c.trace.extend(s.describe())
    failed: list[str] = []  # the node that failed at the trigger, once it has
    if s.trigger_at is not None:
        c.at(s.trigger_at, _trigger, c, s, verdict, failed)
    try:
        c.run_until(s.span)
    except Exception:  # a crash of the core is a finding like any other
        verdict.violations.append(f"exception at {c.now:.4f}s: {traceback.format_exc()}")
    _check_safety(c, s, verdict)
    verdict.violations.extend(f"scripts: {o}" for o in c.script_overlaps)
    if failed:
        _check_liveness(c, s, verdict, failed[0])
    if s.kind is Kind.STABILITY:
        _check_stability(c, verdict)
    verdict.trace = c.trace
    return verdict


def _trigger(c: Cluster, s: Schedule, verdict: Verdict, failed: list[str]) -> None:
    active = [n for n in NODES if c.state(n) == NodeState.ACTIVE]
    if len(active) != 1 or c.state(other(active[0])) != NodeState.STANDBY:
        states = ", ".join(f"{n} {c.state(n)}" for n in NODES)
        verdict.violations.append(
            f"liveness: the cluster did not settle on a clean network within "
            f"{settle_time(s.setup):.2f}s ({c.now:.2f}s): {states}"
        )
        return
    node = active[0]
    c.log(f"TRIGGER: {node} fails ({s.trigger})")
    if s.trigger is Trigger.CRASH:
        c.crash(node)
    else:
        c.break_service(node)
    failed.append(node)


def _check_safety(c: Cluster, s: Schedule, verdict: Verdict) -> None:
    verdict.overlaps = c.overlaps()
    if s.mode is SafetyMode.COOPERATIVE:
        return
    for lo, hi in verdict.overlaps:
        verdict.violations.append(
            f"safety: both services ran from {lo:.4f}s to {hi:.4f}s ({hi - lo:.4f}s)"
        )


def _check_liveness(c: Cluster, s: Schedule, verdict: Verdict, failed: str) -> None:
    assert s.trigger_at is not None
    survivor = c.nodes[other(failed)]
    bound = worst_case(survivor.p).seconds
    starts = [i.start for i in survivor.service if i.start >= s.trigger_at]
    actives = [t for t, _, to in survivor.transitions if to is NodeState.ACTIVE]
    active = next((t for t in actives if t >= s.trigger_at), None)
    verdict.takeover = Takeover(
        started=starts[0] - s.trigger_at if starts else None,
        active=active - s.trigger_at if active is not None else None,
        bound=bound,
    )
    if active is None or active - s.trigger_at > bound:
        took = "never" if active is None else f"after {active - s.trigger_at:.4f}s"
        verdict.violations.append(
            f"liveness: {failed} failed ({s.trigger}) at {s.trigger_at:.4f}s; {survivor.name} "
            f"became active {took}, the bound is {bound:.4f}s"
        )


def _check_stability(c: Cluster, verdict: Verdict) -> None:
    first = min(
        ((t, n) for n in NODES for t, _, to in c.nodes[n].transitions if to is NodeState.ACTIVE),
        default=None,
    )
    if first is None:
        verdict.violations.append("stability: no node ever became active")
        return
    since, holder = first
    for t, source, target in c.nodes[holder].transitions:
        if t > since and source is NodeState.ACTIVE:
            verdict.violations.append(
                f"stability: {holder}, active since {since:.4f}s, went {target} at {t:.4f}s"
            )
    for i in c.nodes[other(holder)].service:
        if i.start >= since:
            verdict.violations.append(
                f"stability: {other(holder)} started its service at {i.start:.4f}s while "
                f"{holder} was active (since {since:.4f}s)"
            )
