"""Seeded schedules through the real core: none may violate an invariant; failures
replay exactly; and a deliberately broken rule is caught within a few thousand."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import failoverd.core.voter
from failoverd.core.node import NodeCore
from failoverd.core.types import Cause, NodeState, SafetyMode
from tests.sim.__main__ import report
from tests.sim.check import run
from tests.sim.ledger import fingerprint
from tests.sim.runner import run_many, worker_pool
from tests.sim.schedule import Kind, generate, settle_time

ROOT = Path(__file__).resolve().parents[2]
SEED = 2026
# As many as fit in about five minutes on two cores (make sim runs more), most of
# them in the two modes that promise safety.
PER_MODE = {SafetyMode.WITNESS: 4000, SafetyMode.FENCE: 7500, SafetyMode.COOPERATIVE: 2500}


@pytest.mark.slow
@pytest.mark.timeout(600)  # about two minutes each: the suite's 120 s default is too close
@pytest.mark.parametrize("mode", list(SafetyMode))
def test_no_violation_in_a_fixed_number_of_schedules(mode: SafetyMode) -> None:
    summary = run_many(PER_MODE[mode], SEED, (mode,), workers=os.cpu_count() or 1)
    assert summary.schedules == PER_MODE[mode]
    assert summary.violations == 0, report(summary, traces=False, code=fingerprint())
    stats = summary.per_mode[mode]
    assert stats.liveness > 0  # the liveness check did measure takeovers
    if mode is SafetyMode.WITNESS:
        assert stats.kinds[Kind.STABILITY] > 0
    if mode is SafetyMode.COOPERATIVE:
        assert stats.dual_schedules > 0  # the unsafe window this mode documents


def _sigterm_is_default(_: int) -> bool:
    return signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_workers_end_on_sigterm_whatever_handler_the_parent_has() -> None:
    def returns(signum: int, frame: object) -> None:
        return None

    previous = signal.signal(signal.SIGTERM, returns)
    try:
        with worker_pool(2) as pool:
            assert signal.getsignal(signal.SIGTERM) is returns  # the parent's is back
            answers = pool.map(_sigterm_is_default, range(4), chunksize=1)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert answers == [True] * 4


def test_a_schedule_replays_exactly() -> None:
    schedule = generate(7, 11, SafetyMode.WITNESS)
    assert schedule == generate(7, 11, SafetyMode.WITNESS)
    first, second = run(schedule, tracing=True), run(schedule, tracing=True)
    assert len(first.trace) > 50
    assert first.trace == second.trace
    assert first.overlaps == second.overlaps
    # In another process, with another hash seed, through the command line.
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "tests.sim", "--seed", "7", "--mode", "witness", "--replay", "11"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.splitlines()[: len(first.trace)] == first.trace
    assert out.splitlines()[-1] == "no violation"


def _first_violation(seed: int, limit: int, kind: str) -> tuple[int, list[str]] | None:
    for index in range(limit):
        verdict = run(generate(seed, index, SafetyMode.WITNESS))
        found = [v for v in verdict.violations if v.startswith(kind)]
        if found:
            return index, found
    return None


def _release_beside_the_startup(
    self: NodeCore, reason: str, then: NodeState, cause: Cause, reply_to: str | None = None
) -> None:
    """_begin_release without its wait for a running startup to be cancelled first."""
    if self.state is NodeState.RELEASING and self.release is not None:
        return
    self._release(reason, then, cause, [reply_to] if reply_to else [])


BROKEN: dict[str, tuple[object, str, Callable[..., object], str]] = {
    # Voters stop refusing other candidates: no lease wait at all.
    "no vote block": (failoverd.core.voter, "vote_block", lambda *args: 0.0, "safety"),
    # The holder never self-demotes when it cannot renew its lease.
    "no self-demotion": (NodeCore, "demote_at", lambda self: None, "safety"),
    # With demote scripts (a lease sized for them), a graceful shutdown cut off on the way
    # runs on past the lease instead of giving way to the demote scripts.
    "no escalation to the demote scripts": (
        NodeCore,
        "escalate_at",
        lambda self: None,
        "safety",
    ),
    # A release during the startup runs the shutdown scripts beside the startup scripts.
    "no wait for a cancelled startup": (
        NodeCore,
        "_begin_release",
        _release_beside_the_startup,
        "scripts",
    ),
}

EXPECTED = {
    "safety": "safety: both services ran from",
    "scripts": "scripts: ",
}


@pytest.mark.parametrize("rule", list(BROKEN))
def test_a_broken_rule_is_caught_within_a_few_thousand_schedules(
    rule: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target, name, replacement, kind = BROKEN[rule]
    monkeypatch.setattr(target, name, replacement)
    found = _first_violation(seed=SEED, limit=3000, kind=kind)
    assert found is not None, f"{rule}: no {kind} violation in 3000 witness-mode schedules"
    _index, violations = found
    assert violations[0].startswith(EXPECTED[kind])


def test_stability_faults_begin_once_the_cluster_has_settled() -> None:
    """Found by a long run (seed 1, index 26636): a cut between the nodes while the
    newly started witness still withheld its vote made the active node demote, which
    is right, and was reported as a stability violation."""
    stable = [
        s
        for s in (generate(1, i, SafetyMode.WITNESS) for i in range(400))
        if s.kind is Kind.STABILITY
    ]
    assert len(stable) > 20
    for s in stable:
        assert all(at >= settle_time(s.setup) for at, _ in s.faults), s.name
