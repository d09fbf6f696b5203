"""Witness mode under partitions, with real daemons on loopback.

Every path between the daemons goes through a relay that the test can cut:
a standby cut off from everything must never take over, and a primary cut
off from everything must stop its service before its lease ends, after which
the standby (which still reaches the witness) takes over.
"""

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from failoverd.config.schema import split_address
from failoverd.core.params import vote_block
from failoverd.core.types import SafetyMode
from failoverd.demo.cluster import WITNESS, Cluster, Node, NodePlan, Tweak
from failoverd.demo.ports import free_ports
from failoverd.demo.waiting import wait_for
from tests.integration.conftest import TIMEOUT, MakeCluster, records, start_settled
from tests.integration.relay import Relays, relays


def _route_through(links: dict[str, tuple[int, int]]) -> Any:
    """A config tweak sending each node's peer and witness traffic through relays."""

    def tweak(plan: NodePlan, data: dict[str, Any]) -> None:
        peer = data["peer"]
        _, target = split_address(peer["addresses"][0])
        [port] = free_ports(1)
        links[f"{plan.name}>{peer['name']}"] = (port, target)
        peer["addresses"] = [f"127.0.0.1:{port}"]
        _, target = split_address(data["witness"]["address"])
        [port] = free_ports(1)
        links[f"{plan.name}>witness"] = (port, target)
        data["witness"]["address"] = f"127.0.0.1:{port}"

    return tweak


def _with_demote(plan: NodePlan, data: dict[str, Any]) -> None:
    """A slow graceful shutdown (3 s, then the stop), and the stop itself as demote script:
    the lease is sized by the demote script's 1.5 s, not by the shutdown's 5 s."""
    [stop] = data["scripts"]["shutdown"]
    data["scripts"]["shutdown"] = [{"command": f"sleep 3; {stop['command']}", "timeout": "5s"}]
    data["scripts"]["demote"] = [{"command": stop["command"], "timeout": "1500ms"}]


def _partitioned(make_cluster: MakeCluster, *tweaks: Tweak) -> Iterator[tuple[Cluster, Relays]]:
    links: dict[str, tuple[int, int]] = {}
    route = _route_through(links)

    def tweak(plan: NodePlan, data: dict[str, Any]) -> None:
        for t in (route, *tweaks):
            t(plan, data)

    cluster = make_cluster(SafetyMode.WITNESS, tweak=tweak)
    with relays() as r:
        for name, (port, target) in links.items():
            r.add(name, port, target)
        yield start_settled(cluster), r


@pytest.fixture
def partitioned(make_cluster: MakeCluster) -> Iterator[tuple[Cluster, Relays]]:
    yield from _partitioned(make_cluster)


@pytest.fixture
def partitioned_demote(make_cluster: MakeCluster) -> Iterator[tuple[Cluster, Relays]]:
    yield from _partitioned(make_cluster, _with_demote)


def _block(cluster: Cluster) -> float:
    """The vote block: how long votes for a silent holder stay held (real time, drift included)."""
    t = cluster.primary.config.timing
    return vote_block(cluster.primary.config.lease_time, t.clock_drift, t.demote_margin) / (
        1 - t.clock_drift
    )


def _cut_off(r: Relays, node: str, peer: str) -> None:
    r.cut(f"{node}>{peer}", f"{peer}>{node}", f"{node}>witness")


def _heal(cluster: Cluster, r: Relays, active: Node) -> None:
    """Mend every link and wait until the cluster has settled with `active` active."""
    r.cut(*r.links, cut=False)
    cluster.wait_settled(active, TIMEOUT)


def _cut_off_until_the_standby_serves(cluster: Cluster, r: Relays, scripts: str) -> float:
    """Cut the primary off from everything; wait until its `scripts` ("shutdown" or
    "demote") have stopped its service and the standby serves. Seconds from the cut."""
    primary, standby = cluster.primary, cluster.standby
    cut = time.monotonic()
    _cut_off(r, primary.name, standby.name)
    wait_for(
        lambda: records(primary.journal(), "transition", f"{scripts} scripts succeeded"),
        TIMEOUT,
        f"the cut-off primary's {scripts} scripts to finish",
    )
    standby.wait_state("active", TIMEOUT)
    standby.wait_serving(TIMEOUT)
    return time.monotonic() - cut


def test_standby_cut_off_from_everything_never_takes_over(
    partitioned: tuple[Cluster, Relays],
) -> None:
    cluster, r = partitioned
    primary, standby = cluster.primary, cluster.standby
    with cluster.dual_watch() as watch:
        _cut_off(r, standby.name, primary.name)
        # The standby notices its peer's silence and tries; it can get no majority.
        wait_for(
            lambda: records(standby.journal(), "transition", f"no heartbeat from {primary.name}"),
            TIMEOUT,
            "the standby to notice the silence",
        )
        deadline = time.monotonic() + 2 * _block(cluster) + 2.0
        while time.monotonic() < deadline:  # bounded: a few seconds, well past any lease
            assert standby.state() != "active"
            assert primary.state() == "active"
            time.sleep(0.1)
        _heal(cluster, r, primary)
    assert not watch.overlaps and watch.samples > 0
    journal = standby.journal()
    assert not records(journal, "takeover", "starting services")
    assert records(journal, "transition", "takeover abandoned")
    assert standby.pop3() is None


def test_primary_cut_off_from_everything_self_demotes_then_standby_takes_over(
    partitioned: tuple[Cluster, Relays],
) -> None:
    cluster, r = partitioned
    primary, standby = cluster.primary, cluster.standby
    with cluster.dual_watch() as watch:
        took = _cut_off_until_the_standby_serves(cluster, r, "shutdown")
        print(f"cut -> standby serving: {took:.3f}s")
        # Cut off, it may try to take over again, but it can never win a majority.
        assert primary.pop3() is None
        assert primary.state() != "active"
        _heal(cluster, r, standby)
    assert not watch.overlaps and watch.samples > 0
    assert records(primary.journal(), "transition", "self-demoting")
    [demoted] = [
        rec for rec in primary.journal() if rec["kind"] == "transition" and rec["to"] == "releasing"
    ]
    assert demoted["details"]["cause"] == "lease_lost"
    [took_over] = records(standby.journal(), "takeover", "lease for epoch")
    assert took_over.endswith(f"granted by {standby.name}, {WITNESS}")


def test_primary_cut_off_runs_its_demote_scripts_not_its_slow_shutdown(
    partitioned_demote: tuple[Cluster, Relays],
) -> None:
    cluster, r = partitioned_demote
    primary = cluster.primary
    assert primary.config.lease_time == pytest.approx(0.6 + 1.5 + 0.2)
    with cluster.dual_watch() as watch:
        _cut_off_until_the_standby_serves(cluster, r, "demote")
        _heal(cluster, r, cluster.standby)
    assert not watch.overlaps and watch.samples > 0
    journal = primary.journal()
    assert records(journal, "transition", "self-demoting so that the demote scripts end first")
    assert not records(journal, "script", "shutdown scripts")


def test_a_graceful_shutdown_cut_off_gives_way_to_the_demote_scripts(
    partitioned_demote: tuple[Cluster, Relays],
) -> None:
    cluster, r = partitioned_demote
    primary = cluster.primary
    # The CLI follows the switchover to its end: let it, in the background, while the
    # primary is cut off half-way through its graceful shutdown.
    operator = threading.Thread(target=primary.cli, args=("switchover",), daemon=True)
    with cluster.dual_watch() as watch:
        operator.start()
        wait_for(
            lambda: primary.state() == "releasing",
            TIMEOUT,
            "the primary to begin its (3 s) graceful shutdown",
        )
        _cut_off_until_the_standby_serves(cluster, r, "demote")
        _heal(cluster, r, cluster.standby)
        operator.join()
    assert not watch.overlaps and watch.samples > 0
    journal = primary.journal()
    assert records(journal, "lease", "lease not renewed during a graceful shutdown")
    assert records(journal, "script", "shutdown scripts failed: aborted")
    assert "aborting the running script" in primary.log_text()
