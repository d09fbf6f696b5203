"""Stopping the active node's daemon leaves its service running (as the seed did),
and must not make the standby start a second copy of it."""

import os
import signal
import time

from failoverd.core.types import SafetyMode
from failoverd.demo.waiting import wait_for
from tests.integration.conftest import TIMEOUT, MakeCluster, records, start_settled


def test_stopped_active_daemon_keeps_its_service_and_the_standby_waits(
    make_cluster: MakeCluster,
) -> None:
    cluster = start_settled(make_cluster(SafetyMode.WITNESS))
    primary, standby = cluster.primary, cluster.standby
    with cluster.dual_watch() as watch:
        primary.daemon.signal(signal.SIGTERM)
        assert primary.daemon.wait(TIMEOUT) == 0
        wait_for(
            lambda: records(standby.journal(), "hold", "daemon is stopping"),
            TIMEOUT,
            "the standby to learn that the primary's daemon stopped",
        )
        # Well past dead_time and any lease: the service still runs, once.
        deadline = time.monotonic() + 6.0
        while time.monotonic() < deadline:  # bounded observation
            assert primary.pop3() is not None
            assert standby.state() != "active"
            time.sleep(0.1)
        # Now the service itself dies: the remote checks fail and the standby takes over.
        service = primary.service_pid()
        assert service is not None
        os.kill(service, signal.SIGKILL)
        standby.wait_state("active", TIMEOUT)
        standby.wait_serving(TIMEOUT)
    assert not watch.overlaps and watch.samples > 0
    [took_over] = [r for r in standby.journal() if r["to"] == "taking_over"]
    assert "whose daemon was stopped" in str(took_over["reason"])
    assert took_over["details"]["cause"] == "remote_checks_failed"
