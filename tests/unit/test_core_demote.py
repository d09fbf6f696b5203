"""Demote scripts (witness mode): a node that must stop because it cannot renew its lease
stops its service at once, so that the lease, and every crash failover, is sized by them
rather than by a graceful shutdown.

A graceful shutdown (asked for by the peer, failing checks, a switchover) is longer than
what the lease covers: while it runs the node keeps renewing, and if it cannot, the
shutdown is cancelled and the demote scripts run in time. Only a stop that succeeded is
CONFIRMED to the peer.
"""

from tests.sim.cluster import (
    PRIMARY,
    STANDBY,
    WITNESS,
    Budgets,
    Cluster,
    ScriptBehaviour,
    default_timing,
    node_params,
)
from tests.unit.heartbeats import healthy_heartbeat

from failoverd.core.actions import CancelScripts, Record, ReplyShutdown, RunScripts, SendHeartbeat
from failoverd.core.events import (
    AckReceived,
    HeartbeatReceived,
    Operation,
    OperatorCommand,
    ScriptsFinished,
    ShutdownRequested,
    Tick,
)
from failoverd.core.messages import Ack, ShutdownRequest
from failoverd.core.node import NodeCore
from failoverd.core.types import NodeState, Preference, SafetyMode, ScriptPhase, ShutdownOutcome

# A graceful stop of 3 s; a kill of at most 0.3 s sizes the lease: 1 + 0.3 + 0.2 s.
BUDGETS = Budgets(startup=4.0, shutdown=3.0, demote=0.3)
TIMING = default_timing(lease_time=1.5, shutdown_timeout=4.0)


def _settled() -> Cluster:
    c = Cluster(SafetyMode.WITNESS, TIMING, seed=3, budgets=BUDGETS)
    for name in (WITNESS, PRIMARY, STANDBY):
        c.start(name)
    c.run_until(10.0)
    assert (c.state(PRIMARY), c.state(STANDBY)) == ("active", "standby")
    return c


def _lines(c: Cluster, name: str, *needles: str) -> list[str]:
    """What the trace says of `name` (after the time and the name), with one of `needles`."""
    said = (line.split(maxsplit=2) for line in c.trace)
    return [rest for _, who, rest in said if who == name and any(n in rest for n in needles)]


def _switchover_begun(c: Cluster) -> None:
    """The standby asks for a switchover; the primary begins a slow graceful shutdown."""
    c.nodes[PRIMARY].scripts[ScriptPhase.SHUTDOWN] = ScriptBehaviour(duration=2.5)
    c.feed(STANDBY, OperatorCommand(Operation.SWITCHOVER))
    c.run_until(20.0, stop=lambda: c.nodes[PRIMARY].running is not None)
    assert c.state(PRIMARY) == "releasing"
    assert c.nodes[PRIMARY].running is not None
    assert c.nodes[PRIMARY].running[0] is ScriptPhase.SHUTDOWN


def test_a_holder_that_cannot_renew_runs_its_demote_scripts_not_its_shutdown() -> None:
    c = _settled()
    c.isolate(PRIMARY)
    c.run_until(30.0)
    primary = c.nodes[PRIMARY]
    reasons = [d.reason for d in primary.decisions]
    assert any("self-demoting so that the demote scripts end first" in r for r in reasons)
    assert _lines(c, PRIMARY, "runs demote scripts")
    assert not _lines(c, PRIMARY, "runs shutdown scripts")
    assert _lines(c, PRIMARY, "[transition] demote scripts succeeded")
    assert (NodeState.RELEASING, NodeState.STANDBY) in [t[1:] for t in primary.transitions]
    assert c.state(STANDBY) == "active"
    assert c.overlaps() == []


def test_a_graceful_shutdown_cut_off_gives_way_to_the_demote_scripts_in_time() -> None:
    c = _settled()
    _switchover_begun(c)
    c.isolate(PRIMARY)
    c.run_until(40.0)
    escalated = _lines(c, PRIMARY, "lease not renewed during a graceful shutdown")
    assert escalated
    assert "stopping at once (shutdown cancelled, demote scripts next)" in escalated[0]
    order = _lines(
        c,
        PRIMARY,
        "service still runs (shutdown cancelled)",
        "runs demote scripts",
        "[transition] demote scripts succeeded",
        "CONFIRMED",
        "FAILED",
    )
    # The cancelled shutdown answers nothing; CONFIRMED follows the demote scripts' success.
    assert order == [
        "service still runs (shutdown cancelled)",
        "runs demote scripts: ok after 0.05s",
        "-> cfg2: CONFIRMED cfg2-1-1",
        "[transition] demote scripts succeeded",
    ]
    # Stopped before the lease ran out: the standby takes over without overlap (the
    # primary, cut off, tries for a lease of its own, in vain).
    assert c.state(STANDBY) == "active"
    assert not c.nodes[PRIMARY].serving
    assert c.overlaps() == []


def test_a_graceful_shutdown_renewed_all_along_is_not_cut_short() -> None:
    c = _settled()
    _switchover_begun(c)
    c.run_until(40.0)
    assert not _lines(c, PRIMARY, "during a graceful shutdown", "runs demote scripts")
    assert _lines(c, PRIMARY, "[transition] shutdown scripts succeeded")
    assert _lines(c, PRIMARY, "CONFIRMED")
    assert (c.state(PRIMARY), c.state(STANDBY)) == ("standby", "active")
    assert c.overlaps() == []


def test_a_startup_cancelled_for_lease_loss_is_followed_by_the_demote_scripts() -> None:
    c = _settled()
    c.nodes[STANDBY].scripts[ScriptPhase.STARTUP] = ScriptBehaviour(duration=3.0)
    c.crash(PRIMARY)
    c.run_until(30.0, stop=lambda: c.nodes[STANDBY].running is not None)
    assert c.nodes[STANDBY].running is not None
    assert c.nodes[STANDBY].running[0] is ScriptPhase.STARTUP
    c.isolate(STANDBY)
    c.run_until(40.0)
    assert _lines(c, STANDBY, "self-demoting so that the demote scripts end first")
    assert _lines(c, STANDBY, "startup scripts failed: aborted")
    assert _lines(c, STANDBY, "runs demote scripts")
    assert not _lines(c, STANDBY, "runs shutdown scripts")
    assert _lines(c, STANDBY, "[transition] demote scripts succeeded")
    assert not c.nodes[STANDBY].serving


# -- one core, driven by hand -----------------------------------------------------------


def _active_core() -> tuple[NodeCore, float]:
    """cfg1 active at epoch 1 on a lease granted by cfg2 and the witness; returns the core
    and when that lease ends (nothing renews it afterwards)."""
    params = node_params(PRIMARY, Preference.PRIMARY, SafetyMode.WITNESS, TIMING, budgets=BUDGETS)
    core = NodeCore(params, 0.0, None, "1")
    core.handle(Tick(), 0.0)
    standby = healthy_heartbeat(
        STANDBY, NodeState.STANDBY, 0, Preference.STANDBY, TIMING.lease_time, sent_at=0.1
    )
    core.handle(HeartbeatReceived(standby), 0.1)
    assert core.state is NodeState.STANDBY
    actions = core.handle(Tick(), 0.11)  # no node active, and cfg1 is the preferred one
    assert core.state is NodeState.TAKING_OVER
    [request] = [a.heartbeat for a in actions if isinstance(a, SendHeartbeat)]
    assert request.lease_request
    for voter in (STANDBY, WITNESS):
        ack = Ack(voter, PRIMARY, request.lease_epoch, True, "", request.sent_at, 0, ())
        actions = core.handle(AckReceived(ack), 0.15)
    assert [a.phase for a in actions if isinstance(a, RunScripts)] == [ScriptPhase.STARTUP]
    core.handle(ScriptsFinished(ScriptPhase.STARTUP, True, "exit 0"), 0.2)
    assert core.state is NodeState.ACTIVE
    end = core.lease.valid_until()
    assert end == request.sent_at + TIMING.lease_time
    return core, end


def test_a_stop_asked_for_too_late_for_a_graceful_shutdown_runs_the_demote_scripts() -> None:
    core, end = _active_core()
    # Past lease end - demote 0.3 - margin 0.2 - a heartbeat 0.2, before self-demotion.
    at = end - 0.6
    assert core.demote_at() == end - 0.5
    request = ShutdownRequest("cfg2-1", STANDBY, 1, "cfg1 reports its own checks failing", False)
    actions = core.handle(ShutdownRequested(request), at)
    assert [a.phase for a in actions if isinstance(a, RunScripts)] == [ScriptPhase.DEMOTE]
    reasons = [a.decision.reason for a in actions if isinstance(a, Record)]
    assert (
        "lease not renewed (lease ends in 0.60s): too late for a graceful shutdown, stopping "
        "at once (demote scripts)" in reasons
    )
    assert not [a for a in actions if isinstance(a, ReplyShutdown)]
    actions = core.handle(ScriptsFinished(ScriptPhase.DEMOTE, True, "exit 0"), at + 0.1)
    [reply] = [a.reply for a in actions if isinstance(a, ReplyShutdown)]
    assert (reply.request_id, reply.outcome) == ("cfg2-1", ShutdownOutcome.CONFIRMED)
    released = next(
        a.decision for a in actions if isinstance(a, Record) and a.decision.is_transition
    )
    assert (released.to_state, released.reason) == (NodeState.STANDBY, "demote scripts succeeded")


def test_a_stop_asked_for_in_time_is_graceful_and_escalates_at_its_deadline() -> None:
    core, end = _active_core()
    request = ShutdownRequest("cfg2-1", STANDBY, 1, "switchover", True)
    actions = core.handle(ShutdownRequested(request), end - 0.8)
    assert [a.phase for a in actions if isinstance(a, RunScripts)] == [ScriptPhase.SHUTDOWN]
    assert core.escalate_at() == end - 0.7
    assert core.next_wakeup() <= end - 0.7
    actions = core.handle(Tick(), end - 0.7)
    assert [a for a in actions if isinstance(a, CancelScripts)]
    assert core.escalate_at() is None  # once
    # The cancelled shutdown is no answer and no end of the release.
    actions = core.handle(ScriptsFinished(ScriptPhase.SHUTDOWN, False, "aborted"), end - 0.69)
    assert not [a for a in actions if isinstance(a, ReplyShutdown)]
    assert [a.phase for a in actions if isinstance(a, RunScripts)] == [ScriptPhase.DEMOTE]
    assert core.state is NodeState.RELEASING
    actions = core.handle(ScriptsFinished(ScriptPhase.DEMOTE, False, "exit 1"), end - 0.6)
    [reply] = [a.reply for a in actions if isinstance(a, ReplyShutdown)]
    assert reply.outcome is ShutdownOutcome.FAILED
    assert core.state is NodeState.FAILED
