"""A takeover whose SHUTDOWN_YOUR_SERVICE is out is not abandoned because the peer looks fine.

A daemon frozen (SIGSTOP, a paused VM) with the request queued for it sends its
old "active" heartbeat first when it wakes, then obeys the request. Had the
standby given up on that heartbeat, both nodes would be standby (the lab's
`sigstop-active`). The standby waits for the answer instead: CONFIRMED lets it
start (in fence mode nothing else does, short of a fence); no answer within
shutdown_timeout, from a peer heard healthy all along, means it never got the
request: then, as before the request, the healthy peer keeps the service.
"""

import pytest
from tests.sim.cluster import default_timing, node_params
from tests.unit.heartbeats import healthy_heartbeat

from failoverd.core.actions import Action, Record, RunScripts, SendShutdown
from failoverd.core.events import (
    HeartbeatReceived,
    Operation,
    OperatorCommand,
    ScriptsFinished,
    ShutdownAnswered,
    Tick,
)
from failoverd.core.node import NodeCore
from failoverd.core.types import (
    NodeState,
    Preference,
    SafetyMode,
    ScriptPhase,
    ShutdownOutcome,
)

NON_WITNESS = pytest.mark.parametrize("mode", [SafetyMode.FENCE, SafetyMode.COOPERATIVE])
# Like the lab: shutdown_timeout (6 s) is longer than the primary's freeze (5 s).
TIMING = default_timing(shutdown_timeout=6.0)


def _heartbeat(at: float, state: NodeState = NodeState.ACTIVE) -> HeartbeatReceived:
    return HeartbeatReceived(
        healthy_heartbeat("cfg1", state, 1, Preference.PRIMARY, TIMING.lease_time, sent_at=at)
    )


def _scripts(actions: list[Action]) -> list[ScriptPhase]:
    return [a.phase for a in actions if isinstance(a, RunScripts)]


def _frozen_primary(mode: SafetyMode) -> tuple[NodeCore, str]:
    """cfg2 in standby behind an active cfg1, whose daemon freezes at 1.0 s: the
    standby has sent SHUTDOWN_YOUR_SERVICE (at 2.1 s) and waits."""
    core = NodeCore(node_params("cfg2", Preference.STANDBY, mode, TIMING), 0.0, None, "1")
    core.handle(Tick(), 0.0)
    for i in range(1, 11):
        core.handle(_heartbeat(i / 10), i / 10)
    assert core.state is NodeState.STANDBY
    actions = core.handle(Tick(), 2.1)
    [send] = [a for a in actions if isinstance(a, SendShutdown)]
    assert core.state is NodeState.TAKING_OVER
    return core, send.request.request_id


@NON_WITNESS
def test_a_woken_peers_old_heartbeat_does_not_end_the_takeover(mode: SafetyMode) -> None:
    core, rid = _frozen_primary(mode)
    # The primary wakes at 6.0 s: its queued heartbeat comes first, saying active and healthy.
    before = core.handle(_heartbeat(6.0), 6.0)
    assert core.state is NodeState.TAKING_OVER
    holds = [a.decision.reason for a in before if isinstance(a, Record)]
    assert any("may still obey SHUTDOWN_YOUR_SERVICE" in r for r in holds), holds
    # Then it obeys the request it found queued, and says so in its heartbeats.
    before += core.handle(_heartbeat(6.05, NodeState.RELEASING), 6.05)
    before += core.handle(Tick(), 6.3)
    assert core.state is NodeState.TAKING_OVER
    assert _scripts(before) == []  # nothing started, nothing fenced, before the answer
    actions = core.handle(ShutdownAnswered(rid, ShutdownOutcome.CONFIRMED, "stopped"), 6.6)
    assert _scripts(actions) == [ScriptPhase.STARTUP]
    core.handle(ScriptsFinished(ScriptPhase.STARTUP, True, "ok"), 7.0)
    assert core.state is NodeState.ACTIVE


@NON_WITNESS
def test_a_confirmation_after_the_old_heartbeat_still_starts(mode: SafetyMode) -> None:
    # The CONFIRMED comes while the "active" heartbeat is the last one heard.
    core, rid = _frozen_primary(mode)
    core.handle(_heartbeat(6.0), 6.0)
    actions = core.handle(ShutdownAnswered(rid, ShutdownOutcome.CONFIRMED, "stopped"), 6.4)
    assert _scripts(actions) == [ScriptPhase.STARTUP]
    assert core.state is NodeState.TAKING_OVER


@NON_WITNESS
def test_a_peer_heard_healthy_for_all_of_shutdown_timeout_keeps_its_service(
    mode: SafetyMode,
) -> None:
    # Awake, healthy and never answering: the request did not reach it (the connection
    # broke). Nothing will stop it, so it keeps the service, as before the request.
    core, _ = _frozen_primary(mode)
    actions: list[Action] = []
    for i in range(30, 41):  # 6.0 s to 8.0 s
        actions += core.handle(_heartbeat(i / 5), i / 5)
        assert core.state is NodeState.TAKING_OVER
    actions += core.handle(Tick(), 2.1 + TIMING.shutdown_timeout)
    assert core.state is NodeState.STANDBY
    assert _scripts(actions) == []


@NON_WITNESS
def test_an_unreachable_peer_that_looks_fine_again_ends_the_takeover(mode: SafetyMode) -> None:
    # No connection was accepted: the request never reached it, nothing will stop it.
    core, rid = _frozen_primary(mode)
    core.handle(_heartbeat(2.5), 2.5)
    assert core.state is NodeState.TAKING_OVER
    actions = core.handle(
        ShutdownAnswered(rid, ShutdownOutcome.UNREACHABLE, "connection refused"), 2.6
    )
    assert core.state is NodeState.STANDBY
    assert _scripts(actions) == []


def _fencing() -> tuple[NodeCore, str]:
    """Fence mode: the frozen primary has not answered within shutdown_timeout, and the
    standby's fence command runs."""
    core, rid = _frozen_primary(SafetyMode.FENCE)
    actions = core.handle(Tick(), 2.1 + TIMING.shutdown_timeout)
    assert _scripts(actions) == [ScriptPhase.FENCE]
    return core, rid


@pytest.mark.parametrize("late", [ShutdownOutcome.REFUSED, ShutdownOutcome.CONFIRMED])
def test_a_late_answer_waits_for_the_running_fence(late: ShutdownOutcome) -> None:
    # The fence cannot be called back. Abandoning the takeover on a late REFUSED left
    # it running on behind a standby, which could take over again and start its
    # service while that old fence still ran (two phases at once; found by the
    # property test). A late CONFIRMED must not start the service before it either.
    core, rid = _fencing()
    actions = core.handle(ShutdownAnswered(rid, late, "late"), 8.5)
    assert core.state is NodeState.TAKING_OVER
    actions += core.handle(Tick(), 8.5 + TIMING.dead_time)
    assert core.state is NodeState.TAKING_OVER
    assert _scripts(actions) == []
    assert not [a for a in actions if isinstance(a, SendShutdown)]  # the same takeover
    actions = core.handle(ScriptsFinished(ScriptPhase.FENCE, True, "powered off"), 12.0)
    assert _scripts(actions) == [ScriptPhase.STARTUP]
    assert core.scripts_running is ScriptPhase.STARTUP


def test_maintenance_mode_waits_for_the_running_fence_too() -> None:
    core, _ = _fencing()
    actions = core.handle(OperatorCommand(Operation.MAINTENANCE_ON), 8.5)
    assert core.state is NodeState.TAKING_OVER
    assert _scripts(actions) == []
    core.handle(ScriptsFinished(ScriptPhase.FENCE, True, "powered off"), 12.0)
    assert core.state is NodeState.STANDBY  # abandoned once the fence has ended
    assert core.scripts_running is None
