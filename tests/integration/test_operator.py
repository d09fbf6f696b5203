"""Planned handovers through the operator CLI, against running daemons."""

import json

from failoverd.core.types import SafetyMode
from failoverd.demo.cluster import failoverd_cli
from tests.integration.conftest import TIMEOUT, MakeCluster, records, start_settled


def test_switchover_and_failback_through_the_cli(make_cluster: MakeCluster) -> None:
    cluster = start_settled(make_cluster(SafetyMode.WITNESS))
    primary, standby = cluster.primary, cluster.standby
    with cluster.dual_watch() as watch:
        done = primary.cli("switchover")
        assert done.returncode == 0, done.stderr
        cluster.wait_settled(standby, TIMEOUT)
        assert primary.pop3() is None

        status = primary.cli("status")
        assert status.returncode == 0, status.stderr
        assert "witness" in status.stdout
        for name in (primary.name, standby.name):
            assert name in status.stdout
        # peer.api is set: the standby's own daemon says it runs the service now.
        said = [line for line in status.stdout.splitlines() if "'s own daemon" in line]
        assert len(said) == 1 and said[0].startswith(f"{standby.name}'s own daemon"), said
        own = standby.status()
        assert own is not None
        epoch = own["node"]["epoch"]
        assert f": active, epoch {epoch}; it sees {primary.name} " in said[0], said

        # The witness's own view, through its API: its vote is the new active's.
        witness = failoverd_cli(cluster.witness_config, "status")
        assert witness.returncode == 0, witness.stderr
        assert f"vote held by {standby.name} (epoch {epoch})" in witness.stdout
        refused = failoverd_cli(cluster.witness_config, "switchover")
        assert refused.returncode == 2 and "takes no operator commands" in refused.stderr

        # The failback may be asked of either node: here, of the active standby.
        done = standby.cli("failback")
        assert done.returncode == 0, done.stderr
        cluster.wait_settled(primary, TIMEOUT)
        assert standby.pop3() is None
    assert watch.samples > 0 and not watch.overlaps

    causes = [r["details"].get("cause") for r in standby.journal() if r["to"] == "taking_over"]
    assert causes == ["switchover"]
    assert records(primary.journal(), "takeover", "lease for epoch")
    history = primary.cli("history", "--json", "--limit", "1000")
    assert history.returncode == 0, history.stderr
    assert json.loads(history.stdout) == primary.journal()
    assert records(primary.journal(), "transition", f"{standby.name} asked: operator failback")

    # Nothing to fail back now: a no-op that says so.
    again = primary.cli("failback")
    assert again.returncode == 0, again.stderr
    assert f"{primary.name} (the primary) is already active" in again.stdout
    assert primary.state() == "active"
