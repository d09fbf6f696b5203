"""A daemon killed and restarted in the middle of a failover: never two services at once."""

from collections.abc import Callable
from typing import Any

import pytest

from failoverd.core.types import SafetyMode
from failoverd.demo.cluster import Cluster, DualWatch, NodePlan, Tweak
from failoverd.demo.waiting import wait_for
from tests.integration.conftest import TIMEOUT, MakeCluster, records, start_settled

SLOW_START = "sleep 1.5"
"""What makes the standby's startup slow enough to be killed in the middle of it."""
SETTLE_SAMPLES = 100
"""Samples of both services taken once the cluster has settled (2s at the watch's rate)."""


def slow_startup(in_one_script: bool) -> Tweak:
    """The standby sleeps before starting its service: as a script of its own, or inside the
    script that starts the service (as a slow real start-up script would)."""

    def tweak(plan: NodePlan, data: dict[str, Any]) -> None:
        if plan.preference.value != "standby":
            return
        [start] = data["scripts"]["startup"]
        if in_one_script:
            start["command"] = f"{SLOW_START} && {start['command']}"
        else:
            data["scripts"]["startup"] = [SLOW_START, start]

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


def until(watch: DualWatch, samples: int) -> Callable[[], bool]:
    target = watch.samples + samples
    return lambda: watch.samples >= target


@pytest.mark.parametrize(
    "in_one_script",
    [
        pytest.param(False, id="sleep-then-start-scripts"),
        pytest.param(
            True,
            id="sleep-and-start-in-one-script",
            marks=pytest.mark.xfail(
                strict=True,
                reason="daemon bug: the killed daemon's startup script survives it (own "
                "session) and starts the service after the restarted daemon has released",
            ),
        ),
    ],
)
def test_standby_restarted_during_its_startup_scripts(
    make_cluster: MakeCluster, in_one_script: bool
) -> None:
    cluster = start_settled(make_cluster(SafetyMode.WITNESS, tweak=slow_startup(in_one_script)))
    primary, standby = cluster.primary, cluster.standby
    with cluster.dual_watch() as watch:
        cluster.kill_node(primary)
        wait_for(
            lambda: records(standby.journal(), "takeover"),
            TIMEOUT,
            f"{standby.name} to run its startup scripts",
        )
        standby.daemon.kill()
        primary.daemon.start()
        standby.daemon.start()
        winner = wait_for(lambda: settled_on_one(cluster, watch), 3 * TIMEOUT, "one node serving")
        # Long enough for an orphaned startup script to have started its service.
        wait_for(until(watch, SETTLE_SAMPLES), TIMEOUT, "more samples of both services")
        assert settled_on_one(cluster, watch) == winner
    assert not watch.overlaps, watch.overlaps[:3]
    assert records(standby.journal(), "transition", "restarted while taking_over")
