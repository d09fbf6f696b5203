"""Hand-made scenarios on the simulated cluster, with exact assertions."""

from __future__ import annotations

import itertools

import pytest

from failoverd.core.events import AckReceived, Event
from failoverd.core.timing import worst_case
from failoverd.core.types import NodeState, SafetyMode, ScriptPhase
from tests.sim.cluster import (
    PRIMARY,
    STANDBY,
    WITNESS,
    Budgets,
    Cluster,
    ScriptBehaviour,
    SimNode,
)

S = NodeState


def steady(mode: SafetyMode, **kwargs: object) -> Cluster:
    """Both nodes and the witness up; cfg1 active, cfg2 standby after 10 s."""
    c = Cluster(mode=mode, **kwargs)  # type: ignore[arg-type]
    c.start(PRIMARY)
    c.start(STANDBY)
    if mode is SafetyMode.WITNESS:
        c.start(WITNESS)
    c.run_until(10.0)
    assert (c.state(PRIMARY), c.state(STANDBY)) == (S.ACTIVE, S.STANDBY)
    return c


def became(n: SimNode, state: NodeState, after: float = 0.0) -> list[float]:
    return [t for t, _, to in n.transitions if to is state and t >= after]


def reasons(n: SimNode, kind: str) -> list[str]:
    return [d.reason for d in n.decisions if d.kind == kind]


@pytest.mark.parametrize("mode", list(SafetyMode))
def test_primary_crash_standby_active_within_the_bound(mode: SafetyMode) -> None:
    c = steady(mode)
    c.crash(PRIMARY)
    crashed = c.now
    c.run_until(40.0)
    standby = c.nodes[STANDBY]
    bound = worst_case(standby.p).seconds
    active = became(standby, S.ACTIVE, crashed)
    assert len(active) == 1
    assert 0 < active[0] - crashed <= bound
    assert standby.service[0].start < active[0]  # the service starts with the first script
    assert c.overlap() == 0.0


def test_standby_cut_off_from_everything_never_takes_over() -> None:
    c = steady(SafetyMode.WITNESS)
    c.isolate(STANDBY)
    c.run_until(100.0)
    standby = c.nodes[STANDBY]
    assert standby.service == []
    # It tried (the primary fell silent) but no voter but itself granted anything.
    assert became(standby, S.TAKING_OVER)
    assert became(standby, S.ACTIVE) == []
    assert c.state(PRIMARY) == S.ACTIVE
    assert [(t, a, b) for t, a, b in c.nodes[PRIMARY].transitions if t > 10.0] == []


def test_primary_cut_off_from_everything_demotes_before_its_lease_ends() -> None:
    c = steady(SafetyMode.WITNESS)
    primary, standby = c.nodes[PRIMARY], c.nodes[STANDBY]
    assert primary.core is not None
    c.isolate(PRIMARY)
    cut = c.now
    lease_end = None
    while c.state(PRIMARY) == S.ACTIVE:
        lease_end = primary.core.lease.valid_until()
        c.run_until(c.now + 0.001)
    assert lease_end is not None
    assert c.state(PRIMARY) == S.RELEASING
    assert "lease not renewed" in reasons(primary, "transition")[-1]
    c.run_until(60.0)
    stopped = primary.service[0].end
    assert stopped is not None
    # Its shutdown ended before the lease did, on its own clock.
    assert primary.local(stopped) < lease_end
    # The standby took over, after that, within the bound counted from the cut.
    started = standby.service[0].start
    assert stopped < started
    assert became(standby, S.ACTIVE, cut)[0] - cut <= worst_case(standby.p).seconds
    assert c.overlap() == 0.0


def test_cut_between_nodes_with_the_witness_seeing_both_is_no_failover() -> None:
    c = steady(SafetyMode.WITNESS)
    c.cut(PRIMARY, STANDBY)
    c.run_until(120.0)
    assert c.nodes[STANDBY].service == []
    assert became(c.nodes[STANDBY], S.TAKING_OVER) == []
    assert [t for t, _, _ in c.nodes[PRIMARY].transitions if t > 10.0] == []
    holds = reasons(c.nodes[STANDBY], "hold")
    assert any("but the witness wit heard cfg1" in r and "suspect the path" in r for r in holds)


def test_thirty_percent_loss_between_nodes_is_no_failover() -> None:
    c = steady(SafetyMode.WITNESS, seed=3)
    c.links[(PRIMARY, STANDBY)].loss = 0.3
    c.links[(STANDBY, PRIMARY)].loss = 0.3
    c.run_until(300.0)
    assert c.nodes[STANDBY].service == []
    assert became(c.nodes[STANDBY], S.TAKING_OVER) == []
    assert [t for t, _, _ in c.nodes[PRIMARY].transitions if t > 10.0] == []


def test_hanging_shutdown_in_fence_mode_is_fenced_before_the_standby_starts() -> None:
    c = steady(SafetyMode.FENCE)
    primary, standby = c.nodes[PRIMARY], c.nodes[STANDBY]
    primary.scripts[ScriptPhase.SHUTDOWN] = ScriptBehaviour(outcome="hang")
    c.break_service(PRIMARY)
    c.run_until(40.0)
    # The primary ran its shutdown until killed at its budget, and answered FAILED.
    assert "shutdown scripts failed: timed out (killed)" in reasons(primary, "transition")
    fencing = [d for d in standby.decisions if d.reason.startswith("fencing cfg1")]
    assert len(fencing) == 1
    assert "SHUTDOWN_YOUR_SERVICE not confirmed (timed out (killed))" in fencing[0].reason
    assert c.state(PRIMARY) == "down"  # the fence powered it off
    assert primary.service[-1].end is not None
    assert primary.service[-1].end <= standby.service[0].start
    assert c.state(STANDBY) == S.ACTIVE
    assert c.overlap() == 0.0


def test_hanging_shutdown_in_cooperative_mode_starts_after_shutdown_timeout() -> None:
    # Shutdown scripts allowed 3 s, the standby waits 2 s for CONFIRMED: the seed's rule.
    c = steady(SafetyMode.COOPERATIVE, budgets=Budgets(shutdown=3.0))
    primary, standby = c.nodes[PRIMARY], c.nodes[STANDBY]
    primary.scripts[ScriptPhase.SHUTDOWN] = ScriptBehaviour(outcome="hang")
    c.break_service(PRIMARY)
    c.run_until(40.0)
    takeovers = reasons(standby, "takeover")
    assert takeovers == [
        "starting services at epoch 2: cooperative mode, cfg1: no answer within shutdown_timeout"
    ]
    assert c.state(STANDBY) == S.ACTIVE
    assert "shutdown scripts failed: timed out (killed)" in reasons(primary, "transition")
    # Unsafe: the standby started while the primary's shutdown was still running.
    stopped = primary.service[0].end
    assert stopped is not None
    assert c.overlaps() == [(standby.service[0].start, stopped)]
    assert c.overlap() == pytest.approx(3.0 - 2.0, abs=0.02)  # budget - shutdown_timeout


def test_failing_fence_is_retried_and_nothing_starts_until_it_succeeds() -> None:
    c = steady(SafetyMode.FENCE)
    standby = c.nodes[STANDBY]
    standby.scripts[ScriptPhase.FENCE] = ScriptBehaviour(duration=0.1, outcome="fail")
    c.cut(PRIMARY, STANDBY)  # the primary is alive but cannot be asked
    c.run_until(30.0)
    runs = [d.at for d in standby.decisions if d.reason.startswith("fence scripts failed")]
    assert len(runs) >= 5
    # Each attempt starts fence_retry after the last one failed, on the standby's clock.
    assert all(b - a >= c.timing.fence_retry for a, b in itertools.pairwise(runs))
    assert standby.service == []
    assert c.state(PRIMARY) == S.ACTIVE
    standby.scripts[ScriptPhase.FENCE] = ScriptBehaviour(duration=0.1, outcome="ok")
    fixed = c.now
    c.run_until(45.0)
    fenced = [d.at for d in standby.decisions if d.reason.startswith("fence scripts succeeded")]
    assert len(fenced) == 1 and standby.real(fenced[0]) >= fixed
    assert c.state(PRIMARY) == "down"
    assert standby.service[0].start >= standby.real(fenced[0])
    assert c.state(STANDBY) == S.ACTIVE
    assert c.overlap() == 0.0


def test_restarted_witness_grants_nothing_for_one_full_block() -> None:
    c = steady(SafetyMode.WITNESS)
    grants: list[float] = []
    send = c.send

    def watch(src: str, dst: str, event: Event) -> None:
        if src == WITNESS and isinstance(event, AckReceived) and event.ack.granted:
            grants.append(c.now)
        send(src, dst, event)

    c.send = watch  # type: ignore[method-assign]
    c.crash(WITNESS)
    c.run_until(12.0)
    c.start(WITNESS, wipe=True)
    restarted = c.now
    c.run_until(30.0)
    block = c.timing.vote_block / c.witness.rate
    assert grants, "the witness grants again after its block"
    assert grants[0] >= restarted + block
    # Meanwhile the primary kept its lease with its own and the standby's votes.
    assert c.state(PRIMARY) == S.ACTIVE
    assert [t for t, _, _ in c.nodes[PRIMARY].transitions if t > 10.0] == []


@pytest.mark.parametrize("mode", [SafetyMode.WITNESS, SafetyMode.FENCE])
@pytest.mark.parametrize("delay", [0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0])
def test_node_restart_in_the_middle_of_a_failover_never_gives_two_active(
    mode: SafetyMode, delay: float
) -> None:
    c = steady(mode)
    c.crash(PRIMARY)
    c.run_until(c.now + 1.0 + delay)  # the standby is somewhere in its takeover
    c.crash(STANDBY)
    c.start(PRIMARY)
    c.run_until(c.now + 0.3)
    c.start(STANDBY)
    c.run_until(80.0)
    assert c.overlap() == 0.0
    active = [n for n in (PRIMARY, STANDBY) if c.state(n) == S.ACTIVE]
    assert len(active) == 1
