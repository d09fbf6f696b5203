"""A node whose shutdown failed may still be running its service: in witness mode it
keeps its lease, so that the peer cannot start a second copy until an operator has
looked (the way Pacemaker blocks a resource whose stop failed)."""

from tests.sim.cluster import PRIMARY, STANDBY, WITNESS, Cluster, ScriptBehaviour

from failoverd.core.events import Operation, OperatorCommand
from failoverd.core.types import SafetyMode, ScriptPhase


def _settled() -> Cluster:
    c = Cluster(SafetyMode.WITNESS, seed=7)
    for name in (WITNESS, PRIMARY, STANDBY):
        c.start(name)
    c.run_until(10.0)
    assert (c.state(PRIMARY), c.state(STANDBY)) == ("active", "standby")
    return c


def test_a_failed_shutdown_keeps_the_lease_and_the_peer_never_starts() -> None:
    c = _settled()
    c.nodes[PRIMARY].scripts[ScriptPhase.SHUTDOWN] = ScriptBehaviour(outcome="fail")
    c.feed(STANDBY, OperatorCommand(Operation.SWITCHOVER))
    c.run_until(120.0)
    assert c.state(PRIMARY) == "failed"
    assert c.state(STANDBY) != "active"
    assert not c.nodes[STANDBY].service
    reasons = [d.reason for d in c.nodes[STANDBY].decisions]
    assert any("refused its vote: vote held by cfg1" in r for r in reasons)


def test_the_operator_clearing_the_failed_state_lets_the_peer_take_over() -> None:
    c = _settled()
    c.nodes[PRIMARY].scripts[ScriptPhase.SHUTDOWN] = ScriptBehaviour(outcome="fail")
    c.feed(STANDBY, OperatorCommand(Operation.SWITCHOVER))
    c.run_until(40.0)
    assert c.state(PRIMARY) == "failed"
    # The operator stopped the service by hand and clears the state.
    c.feed(PRIMARY, OperatorCommand(Operation.MAINTENANCE_OFF))
    cleared = c.now
    c.run_until(80.0)
    assert c.state(STANDBY) == "active"
    assert c.state(PRIMARY) == "standby"
    # Released at once: no waiting for a whole vote block.
    started = c.nodes[STANDBY].service[0].start
    assert started - cleared < c.timing.vote_block / 2
