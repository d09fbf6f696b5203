"""A daemon killed and restarted in the middle of a failover: never two services at once.

The standby's startup waits at a gate (a file the test creates), so the test
kills its daemon while the startup scripts certainly run, and decides when
the script the dead daemon left behind may go on: once the restarted daemon
has released, which is the moment a leftover startup script does harm.
"""

from pathlib import Path
from typing import Any

import pytest

from failoverd.core.types import SafetyMode
from failoverd.demo.cluster import Cluster, DualWatch, NodePlan, Tweak, leftovers
from failoverd.demo.waiting import wait_for
from tests.integration.conftest import TIMEOUT, MakeCluster, records, start_settled

GATE = "startup-gate"
SETTLE_SAMPLES = 50
"""Samples of both services taken once the cluster has settled (1s at the watch's rate)."""


def gated_startup(in_one_script: bool) -> Tweak:
    """The standby's startup waits for the gate file: as a script of its own, or inside the
    script that starts the service (as a slow real start-up script would)."""

    def tweak(plan: NodePlan, data: dict[str, Any]) -> None:
        if plan.preference.value != "standby":
            return
        wait = f"while [ ! -e {plan.home / GATE} ]; do sleep 0.05; done"
        [start] = data["scripts"]["startup"]
        if in_one_script:
            start["command"] = f"{wait}; {start['command']}"
        else:
            data["scripts"]["startup"] = [{"command": wait, "timeout": "60s"}, start]
        start["timeout"] = "60s"

    return tweak


def settled_on_one(cluster: Cluster, watch: DualWatch) -> str:
    """The name of the one node that is active and serving while the other stands by with its
    service silent; '' while that is not (yet) so. Fails at once on two services answering."""
    assert not watch.overlaps, watch.overlaps[0]
    states = {n.name: n.state() for n in cluster.nodes}
    serving = {n.name for n in cluster.nodes if n.pop3() is not None}
    active = [name for name, state in states.items() if state == "active"]
    if len(active) == 1 and serving == set(active) and "standby" in states.values():
        return active[0]
    return ""


def gated_scripts(base: Path) -> list[int]:
    """Pids of startup scripts still waiting at (or just past) the gate."""
    found = []
    for pid in leftovers(base):
        try:
            if GATE.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


@pytest.mark.parametrize(
    "in_one_script",
    [
        pytest.param(False, id="gate-then-start-scripts"),
        # The killed daemon's startup script survives it (its own session); the
        # restarted daemon must kill it before it starts the service behind its back.
        pytest.param(True, id="gate-and-start-in-one-script"),
    ],
)
def test_standby_restarted_during_its_startup_scripts(
    make_cluster: MakeCluster, in_one_script: bool
) -> None:
    cluster = start_settled(make_cluster(SafetyMode.WITNESS, tweak=gated_startup(in_one_script)))
    primary, standby = cluster.primary, cluster.standby
    with cluster.dual_watch() as watch:
        cluster.kill_node(primary)
        wait_for(lambda: gated_scripts(cluster.base), TIMEOUT, "the standby's startup scripts")
        standby.daemon.kill()
        restarted = len(standby.journal())
        primary.daemon.start()
        standby.daemon.start()
        wait_for(
            lambda: records(standby.journal()[restarted:], "transition", "shutdown scripts"),
            TIMEOUT,
            f"the restarted {standby.name} to release",
        )
        (standby.plan.home / GATE).touch()
        wait_for(lambda: not gated_scripts(cluster.base), TIMEOUT, "the gated scripts to end")
        winner = wait_for(lambda: settled_on_one(cluster, watch), 3 * TIMEOUT, "one node serving")
        target = watch.samples + SETTLE_SAMPLES
        wait_for(lambda: watch.samples >= target, TIMEOUT, "more samples of both services")
        assert settled_on_one(cluster, watch) == winner
    assert not watch.overlaps, watch.overlaps[:3]
    assert records(standby.journal(), "transition", "restarted while taking_over")
