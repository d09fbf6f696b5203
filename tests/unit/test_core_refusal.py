"""A peer that answers 'no' is alive: its refusal is never a confirmation."""

from tests.sim.cluster import default_timing, node_params

from failoverd.core.actions import RunScripts, SendShutdown
from failoverd.core.events import ShutdownAnswered, Tick
from failoverd.core.node import NodeCore
from failoverd.core.types import NodeState, Preference, SafetyMode, ShutdownOutcome


def _taking_over(mode: SafetyMode) -> tuple[NodeCore, str]:
    core = NodeCore(node_params("cfg2", Preference.STANDBY, mode, default_timing()), 0.0, None, "1")
    core.handle(Tick(), 0.0)
    core.handle(Tick(), 3.5)  # init_dead passed, the peer never heard: standby, then judge
    actions = core.handle(Tick(), 3.51)
    [send] = [a for a in actions if isinstance(a, SendShutdown)]
    assert core.state is NodeState.TAKING_OVER
    return core, send.request.request_id


def test_a_refusal_abandons_the_takeover_in_cooperative_and_fence_modes() -> None:
    for mode in (SafetyMode.COOPERATIVE, SafetyMode.FENCE):
        core, rid = _taking_over(mode)
        answer = ShutdownAnswered(rid, ShutdownOutcome.REFUSED, "stale: I am active at epoch 4")
        actions = core.handle(answer, 3.6)
        assert core.state is NodeState.STANDBY, mode
        assert not [a for a in actions if isinstance(a, RunScripts)], mode
        # And it does not try again at once: one dead_time later at the earliest.
        assert core.state is NodeState.STANDBY
        core.handle(Tick(), 3.6 + default_timing().dead_time / 2)
        assert core.state is NodeState.STANDBY


def test_a_failed_shutdown_still_leads_to_a_start_in_cooperative_mode() -> None:
    core, rid = _taking_over(SafetyMode.COOPERATIVE)
    actions = core.handle(ShutdownAnswered(rid, ShutdownOutcome.FAILED, "exit 1"), 3.6)
    assert [a.phase.value for a in actions if isinstance(a, RunScripts)] == ["startup"]
