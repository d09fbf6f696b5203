"""Real daemons on loopback: a factory of `Cluster`s that are always torn down.

Every cluster lives under the test's tmp_path; teardown stops the daemons and
the services they started (and anything else still running from that
directory), then prints the tail of each daemon's log, which pytest shows
when the test failed.
"""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from failoverd.core.types import SafetyMode
from failoverd.demo.cluster import Cluster, Tweak
from failoverd.demo.logs import log_tail

TIMEOUT = 15.0
"""Seconds any single awaited condition may take; generous for a loaded 2-core machine."""

MakeCluster = Callable[..., Cluster]


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[MakeCluster]:
    """make_cluster(safety=..., tweak=...) -> a written (not started) Cluster."""
    clusters: list[Cluster] = []

    def make(safety: SafetyMode = SafetyMode.COOPERATIVE, tweak: Tweak | None = None) -> Cluster:
        cluster = Cluster(tmp_path / f"cluster-{len(clusters)}", safety, tweak=tweak)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.close()
        # The daemons' logs, the witness's, and the services' (why a startup script failed).
        logs = [n.plan.log for n in cluster.nodes] + [n.plan.service_log for n in cluster.nodes]
        if cluster.witness is not None:
            logs.append(cluster.witness.log)
        for log in logs:
            if log.exists():
                print(f"----- {log} (last lines)\n{log_tail(log, 40)}")


def start_settled(cluster: Cluster) -> Cluster:
    """Start the cluster and wait until the primary is active and the standby stands by."""
    if cluster.witness is not None:
        cluster.witness.start()
        cluster.wait_witness(TIMEOUT)
    for node in cluster.nodes:
        node.daemon.start()
    cluster.wait_settled(cluster.primary, TIMEOUT)
    return cluster


def start_primary_alone(cluster: Cluster) -> None:
    """The primary alone becomes active after init_dead (cooperative mode)."""
    cluster.primary.daemon.start()
    cluster.primary.wait_state("active", TIMEOUT)
    cluster.primary.wait_serving(TIMEOUT)


def records(journal: list[dict[str, object]], kind: str, contains: str = "") -> list[str]:
    """The reasons of the journal's records of `kind` that contain `contains`."""
    return [str(r["reason"]) for r in journal if r["kind"] == kind and contains in str(r["reason"])]
