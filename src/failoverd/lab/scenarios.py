"""The fault scenarios: each one a real cluster in the lab, one fault, and what must follow.

A scenario builds a fresh `Cluster` in the chosen safety mode, waits for the
steady state (primary active, the client served by it), injects its fault
(recorded with its time), waits with deadlines for the expected outcome,
heals, waits for the cluster to settle, and judges:

- liveness (every mode): the service answers through HAProxy again, within
  a generous bound; afterwards exactly one node is active, the other
  standby, with consistent epochs in both states and journals, and no
  unexpected error in the daemons' logs;
- safety (witness and fence modes; only reported in cooperative mode,
  which is unsafe by design): never two Dovecots serving at once, never two
  nodes answering 200 on /health at once, no role change that the fault did
  not call for, no flapping of the service behind HAProxy.

`run_scenario` returns a `ScenarioResult` with the figures; `SCENARIOS` is
the matrix (the issue's list) and `QUICK` the subset of `selftest --quick`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from failoverd.core.types import SafetyMode
from failoverd.lab.cluster import Cluster, ClusterNode, ClusterSpec, stopped, transitions
from failoverd.lab.dovecot import DovecotError
from failoverd.lab.netns import LabError
from failoverd.lab.node import config_toml
from failoverd.lab.watch import PROBE_TIMEOUT

SERVICE_TIMEOUT = 60.0
"""Generous bound for the service to answer through HAProxy again after a fault."""
HOLD = 8.0
"""How long a fault that must not cause a failover is kept: more than a lease (6.2 s)."""
HOLD_FAILED = 12.0
"""How long a failed node keeps everyone from starting before the operator steps in: more
than a lease (9.2 s with the hooks' 3 s), so that only its renewals can explain it."""
FREEZE = 5.0
"""How long a daemon stays frozen in the SIGSTOP scenarios."""


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """What one scenario saw. Times in seconds; `details` says why it failed, or what happened."""

    name: str
    mode: SafetyMode
    passed: bool
    time_to_service: float | None
    dual_active_seconds: float
    false_failovers: int
    details: str
    longest_outage: float | None = None
    seconds: float = 0.0  # how long the scenario took, set-up and teardown included


class Run:
    """One scenario's run: what it did to the cluster, what it expects, what went wrong."""

    def __init__(self, cluster: Cluster, *, long: bool, step: Callable[[str], None]) -> None:
        self.cluster = cluster
        self.mode = cluster.mode
        self.long = long
        self.step = step
        self.steady_at = time.monotonic()
        self.fault_at: float | None = None
        self.events: list[tuple[float, str]] = []
        self.allowed_failovers = 0
        self.time_to_service: float | None = None
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.allowed_errors: list[str] = []  # regular expressions of expected log errors

    @property
    def since_fault(self) -> float:
        return self.steady_at if self.fault_at is None else self.fault_at

    def fault(self, text: str) -> float:
        """Record that the fault (or operator action) `text` happens now; its time."""
        now = time.monotonic()
        if self.fault_at is None:
            self.fault_at = now
        self.events.append((now, text))
        self.step(text)
        return now

    def check(self, ok: bool, problem: str, *, safety: bool = False) -> None:
        """Count `problem` unless `ok`; a safety problem is only noted in cooperative mode."""
        if ok:
            return
        if safety and self.mode is SafetyMode.COOPERATIVE:
            self.notes.append(f"(cooperative, not enforced) {problem}")
        else:
            self.failures.append(problem)

    # -- expectations ------------------------------------------------------------------

    def expect_failover(
        self, to: str, *, since: float | None = None, reason: str | None = None
    ) -> float:
        """The service moves to `to`: wait until the client is answered by it; the delay."""
        start = self.since_fault if since is None else since
        self.allowed_failovers += 1
        self.step(f"waiting for the service from {to}")
        answered = self.cluster.wait_answer(to, start, SERVICE_TIMEOUT)
        delay = answered - start
        if self.time_to_service is None:
            self.time_to_service = delay
        if reason is not None:
            node = self.cluster.nodes[to]
            took = [
                r["reason"]
                for r in node.journal()
                if r["kind"] == "transition" and r["to"] == "taking_over" and r["clock"] >= start
            ]
            self.check(
                any(reason in r for r in took),
                f"{to} took over for {took}, expected a reason with {reason!r}",
            )
        return delay

    def allow_failover(self) -> None:
        """One role change is acceptable, though not required."""
        self.allowed_failovers += 1

    def hold(self, seconds: float, what: str) -> None:
        """Keep the situation for an observation period of `seconds` (judged afterwards)."""
        self.step(f"holding for {seconds:g}s: {what}")
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 1.0))

    def expect_journal(self, node: ClusterNode, text: str) -> None:
        """`node`'s journal has a record since the fault whose reason contains `text`."""
        found = any(text in r["reason"] for r in node.journal() if r["clock"] >= self.since_fault)
        self.check(found, f"{node.name}'s journal has no {text!r} since the fault")

    # -- the verdict ---------------------------------------------------------------------

    def result(self, name: str, restored: bool) -> ScenarioResult:
        c = self.cluster
        since = self.since_fault
        journals = {n: node.journal() for n, node in c.nodes.items()}
        moves = list(transitions(journals, since))
        takeovers = [t for t in moves if t["from"] == "taking_over" and t["to"] == "active"]
        false = max(0, len(takeovers) - self.allowed_failovers)
        self.check(
            false == 0,
            f"{len(takeovers)} takeovers, {self.allowed_failovers} expected",
            safety=True,
        )
        dual = c.watch.dual_seconds(self.steady_at)
        self.check(dual == 0, f"two Dovecots served at once for {dual:.1f}s", safety=True)
        dual_health = c.watch.dual_healthy_seconds(self.steady_at)
        self.check(
            dual_health == 0, f"two nodes answered /health 200 for {dual_health:.1f}s", safety=True
        )
        log = c.client.log().between(since)
        runs = log.runs()
        shown = [f"{r.node}×{r.count}" for r in runs]
        if len(shown) > 6:
            shown[3:-2] = [f"… ({len(runs) - 5} more runs) …"]
        self.check(
            len(runs) - 1 <= self.allowed_failovers,
            f"the service flapped: answers came from {' → '.join(shown)}",
            safety=True,
        )
        interleaved = log.interleavings(within=1.0)
        self.check(
            not interleaved,
            f"HAProxy spread logins over both nodes {len(interleaved)}×",
            safety=True,
        )
        if restored:
            for problem in c.settled(self.allowed_errors):
                self.failures.append(problem)
        periods = log.error_periods()
        outage = max((p.duration for p in periods), default=0.0)
        passed = not self.failures
        timeline = sorted([*self.events] + [(float(t["clock"]), _describe(t)) for t in moves])
        details = "; ".join(
            [*self.failures, *self.notes, *(f"+{at - since:.1f}s {text}" for at, text in timeline)]
        )
        return ScenarioResult(
            name=name,
            mode=self.mode,
            passed=passed,
            time_to_service=self.time_to_service,
            dual_active_seconds=round(dual, 2),
            false_failovers=false,
            details=details,
            longest_outage=round(outage, 2),
        )


def _describe(t: dict[str, Any]) -> str:
    return f"{t['node']} {t['from']}→{t['to']} (epoch {t['epoch']}): {t['reason']}"


# -- the scenarios -----------------------------------------------------------------------------


def primary_killed(run: Run) -> None:
    c = run.cluster
    run.fault("SIGKILL of the primary's daemon and its Dovecot")
    c.primary.kill()
    c.primary.dovecot.kill()
    run.expect_failover("standby")


def primary_host_dies(run: Run) -> None:
    c = run.cluster
    run.fault("the primary machine dies: all its processes killed, its link down")
    c.faults.kill_host(c.primary.host)
    run.expect_failover("standby")


def service_dies(run: Run) -> None:
    c = run.cluster
    run.fault("SIGKILL of the primary's Dovecot; its daemon lives")
    c.primary.dovecot.kill()
    run.expect_failover("standby", reason="reports its own checks failing")


def link_cut(run: Run) -> None:
    c = run.cluster
    run.fault("link primary-standby cut; the witness sees both")
    c.faults.cut(c.primary.host, c.standby.host)
    if run.mode is SafetyMode.FENCE:
        # Without a witness a cut link looks like a dead peer: the standby fences.
        run.expect_failover("standby")
        run.check(c.switch is not None and "primary" in c.switch.requests, "primary not fenced")
    else:
        run.hold(HOLD, "no failover")


def standby_isolated(run: Run) -> None:
    c = run.cluster
    run.fault("standby cut from everything")
    c.faults.isolate(c.standby.host)
    run.hold(HOLD, "no takeover")
    if run.mode is SafetyMode.FENCE:
        # Its fence attempts fail: the power switch is out of its reach.
        run.allowed_errors.append(r"script\[fence 1/1 .*failed with exit code 1")


def primary_isolated(run: Run) -> None:
    c = run.cluster
    run.fault("primary cut from everything")
    c.faults.isolate(c.primary.host)
    run.expect_failover("standby")
    run.hold(3.0, "the primary stays cut off")
    if run.mode is SafetyMode.WITNESS:
        run.expect_journal(c.primary, "self-demoting")


def lossy_link(run: Run) -> None:
    c = run.cluster
    seconds = 120.0 if run.long else 30.0
    run.fault(f"30 % random loss between primary and standby for {seconds:g}s")
    fault = c.faults.loss(c.primary.host, c.standby.host, 0.3)
    run.hold(seconds, "no failover")
    c.faults.heal(fault)


def flapping_link(run: Run) -> None:
    c = run.cluster
    seconds = 60.0 if run.long else 20.0
    period = 3.0
    run.fault(f"link primary-standby down/up every {period:g}s for {seconds:g}s")
    flap = c.faults.flap(c.primary.host, c.standby.host, period, seconds)
    run.step(f"flapping for {seconds:g}s")
    flap.join(seconds + 10)
    run.allow_failover()
    answer = c.client.log().first_answer(run.since_fault, "standby")
    if answer is not None:
        run.time_to_service = answer.end - run.since_fault


def shutdown_hangs(run: Run) -> None:
    c = run.cluster
    c.primary.arm_hook("shutdown", 3600)
    run.fault("the primary's Dovecot dies and its first shutdown script hangs")
    c.primary.dovecot.kill()
    run.allowed_errors.append(r"script\[shutdown 1/2 /bin/sh \S+/hook\.sh .*timed out after")
    if run.mode is not SafetyMode.WITNESS:
        # Fence: the standby fences the failed primary; cooperative: it starts at once.
        run.expect_failover("standby")
        run.expect_journal(c.primary, "shutdown scripts failed")
        return
    # The failed primary's service may still run: it keeps its lease, and nobody
    # starts until an operator has cleared its state (runbook: "A node is failed").
    c.wait_until(lambda: c.primary.state() == "failed", SERVICE_TIMEOUT, "the primary failed")
    run.hold(HOLD_FAILED, "no takeover from a failed primary")
    c.primary.disarm_hooks()
    cleared = run.fault("operator: failoverd maintenance off on the failed primary")
    ok, out = c.primary.operate("maintenance", "off")
    run.check(ok, f"maintenance off failed: {out}")
    run.expect_failover("standby", since=cleared)


def sigstop_standby(run: Run) -> None:
    c = run.cluster
    run.fault(f"the standby's daemon frozen (SIGSTOP) for {FREEZE:g}s")
    with stopped(c.standby, c.faults):
        run.hold(FREEZE, "standby frozen")
    run.hold(3.0, "no failover after it wakes")


def sigstop_active(run: Run) -> None:
    c = run.cluster
    frozen = run.fault(f"the active primary's daemon frozen (SIGSTOP) for {FREEZE:g}s")
    with stopped(c.primary, c.faults):
        run.hold(FREEZE, "primary frozen")
    woke = time.monotonic()
    run.expect_failover("standby")
    if run.mode is not SafetyMode.WITNESS:
        # Only a lease bounds /health (witness mode). In fence mode the woken primary
        # is still the one node that may serve until it has read the SHUTDOWN_YOUR_SERVICE
        # queued for it or is fenced, which the standby waits for: its 200 then is true,
        # and a login it answers no second copy (cooperative mode promises nothing).
        # Two nodes serving at once is what dual-active measures, in every mode.
        return
    # A frozen API answers nothing: a 200 in a probe begun once the freeze was
    # on was given after the wake-up.
    probes = c.watch.between(frozen + PROBE_TIMEOUT)
    healthy = ", ".join(f"{s.at - woke:+.2f}s" for s in probes if "primary" in s.healthy)
    run.check(
        not healthy, f"the woken primary answered /health 200 (probes at {healthy})", safety=True
    )
    # HAProxy takes the frozen node out after two failed checks (100 ms apart).
    late = [a for a in c.client.log().between(frozen + 1.0) if a.ok and a.node == "primary"]
    run.check(
        not late, f"HAProxy sent {len(late)} logins to the frozen or woken primary", safety=True
    )


def restart_mid_failover(run: Run) -> None:
    c = run.cluster
    c.standby.arm_hook("startup", 2.0)
    run.fault("primary's daemon and Dovecot killed; standby's daemon restarted mid-takeover")
    c.primary.kill()
    c.primary.dovecot.kill()

    def starting() -> bool:
        st = c.standby.status()
        return st is not None and st["node"]["takeover_phase"] == "starting_services"

    c.wait_until(starting, SERVICE_TIMEOUT, "the standby runs its startup scripts", poll=0.05)
    run.fault("SIGKILL of the standby's daemon during its startup scripts, and a restart")
    c.standby.kill()
    c.standby.start()
    run.expect_failover("standby")


def switchover_failback(run: Run) -> None:
    c = run.cluster
    options = ("--timeout", "60s")
    for node, command, target in (
        (c.primary, "switchover", "standby"),
        (c.standby, "failback", "primary"),
    ):
        at = run.fault(f"failoverd {command} on the {node.name}")
        ok, out = node.operate(command, options=options)
        run.check(ok, f"{command} failed: {out}")
        took = run.expect_failover(target, since=at)
        last = out.splitlines()[-1] if out else ""
        run.notes.append(f"{command}: served by {target} after {took:.1f}s; the CLI said {last!r}")


def config_reload(run: Run) -> None:
    c = run.cluster
    nodes = list(c.nodes.values())

    def sighup_all(expect: str) -> None:
        counts = {n.name: n.log_text().count(expect) for n in nodes}
        for n in nodes:
            n.signal(signal.SIGHUP)
        c.wait_until(
            lambda: all(n.log_text().count(expect) > counts[n.name] for n in nodes),
            10,
            f"both daemons log {expect!r}",
        )

    run.fault("SIGHUP with new timers (dead_time 1.5s, checks every 300ms)")
    c.rewrite_configs(dead_time=1.5, check_interval=0.3)
    sighup_all("configuration reloaded")
    run.fault("SIGHUP with a changed node.api (needs a restart: refused)")
    for n in nodes:
        assert n.config is not None
        moved = n.config.node.model_copy(update={"api": f"{n.host.addr}:8791"})
        n.config_path.write_text(config_toml(n.config.model_copy(update={"node": moved})))
    sighup_all("reload refused")
    run.allowed_errors.append("reload refused")
    c.rewrite_configs()
    sighup_all("configuration reloaded")
    run.hold(3.0, "no failover")


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    summary: str
    body: Callable[[Run], None] = field(repr=False)
    quick: bool = False
    hooks: bool = False


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("primary-killed", "SIGKILL of primary daemon + Dovecot", primary_killed, quick=True),
    Scenario("primary-host-dies", "primary machine dies", primary_host_dies),
    Scenario("service-dies", "Dovecot killed, daemon lives", service_dies, quick=True),
    Scenario("link-cut", "link primary-standby cut", link_cut, quick=True),
    Scenario("standby-isolated", "standby cut from everything", standby_isolated),
    Scenario("primary-isolated", "primary cut from everything", primary_isolated, quick=True),
    Scenario("lossy-link", "30 % loss between the nodes", lossy_link),
    Scenario("flapping-link", "link flapping every 3 s", flapping_link),
    Scenario("shutdown-hangs", "a shutdown script hangs", shutdown_hangs, hooks=True),
    Scenario("sigstop-standby", "standby daemon frozen 5 s", sigstop_standby),
    Scenario("sigstop-active", "active daemon frozen 5 s", sigstop_active),
    Scenario(
        "restart-mid-failover", "daemon restarted mid-takeover", restart_mid_failover, hooks=True
    ),
    Scenario("switchover-failback", "switchover, failback (CLI)", switchover_failback, quick=True),
    Scenario("config-reload", "SIGHUP reload, then a refused one", config_reload),
)
BY_NAME = {s.name: s for s in SCENARIOS}
QUICK = tuple(s for s in SCENARIOS if s.quick)


def run_scenario(
    scenario: Scenario,
    mode: SafetyMode = SafetyMode.WITNESS,
    *,
    long: bool = False,
    run_dir: Path | None = None,
    step: Callable[[str], None] = lambda _: None,
) -> ScenarioResult:
    """Run one scenario on a cluster of its own; never raises for a failure of the cluster."""
    started = time.monotonic()
    cluster = Cluster(ClusterSpec(mode=mode, hooks=scenario.hooks), run_dir=run_dir)
    try:
        result = _run_on(cluster, scenario, long=long, step=step)
    finally:
        step("tearing down")
        try:
            cluster.close()
            teardown = ""
        except LabError as e:
            teardown = str(e)
    if teardown:  # after a verdict: keep it, and fail it
        result = dataclasses.replace(result, passed=False, details=f"{teardown}; {result.details}")
    return dataclasses.replace(result, seconds=round(time.monotonic() - started, 1))


def _run_on(
    cluster: Cluster,
    scenario: Scenario,
    *,
    long: bool,
    step: Callable[[str], None],
) -> ScenarioResult:
    try:
        step("building the lab")
        cluster.start()
        step("waiting for the steady state")
        cluster.wait_steady()
    except (LabError, DovecotError, OSError) as e:
        return ScenarioResult(
            scenario.name,
            cluster.mode,
            False,
            None,
            math.nan,
            0,
            f"the lab failed: {type(e).__name__}: {e}",
        )
    run = Run(cluster, long=long, step=step)
    restored = False
    try:
        scenario.body(run)
        step("healing")
        cluster.restore()
        restored = True
    except (LabError, DovecotError, OSError) as e:
        run.failures.append(f"{type(e).__name__}: {e}")
    step("judging")
    return run.result(scenario.name, restored)


def run_matrix(
    scenarios: Sequence[Scenario],
    mode: SafetyMode,
    *,
    long: bool = False,
    keep_dir: Path | None = None,
    step: Callable[[Scenario, str], None] = lambda _s, _t: None,
    done: Callable[[ScenarioResult], None] = lambda _: None,
) -> list[ScenarioResult]:
    """Run `scenarios` one after another; `keep_dir` keeps each one's logs in a subdirectory."""
    results = []
    for s in scenarios:
        run_dir = None if keep_dir is None else keep_dir / f"{mode.value}-{s.name}"
        result = run_scenario(s, mode, long=long, run_dir=run_dir, step=functools.partial(step, s))
        done(result)
        results.append(result)
    return results
