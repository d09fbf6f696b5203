"""A real daemon, as root: its loop and API run SCHED_RR with locked memory; the service
its startup script started runs under the normal scheduler, with nothing locked."""

import os
from pathlib import Path

import pytest

from failoverd.demo.cluster import Cluster
from tests.integration.conftest import MakeCluster, start_primary_alone

RR_RESET = os.SCHED_RR | os.SCHED_RESET_ON_FORK


def locked_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(ln for ln in status.splitlines() if ln.startswith("VmLck:")).split()[1])


def policies(pid: int) -> dict[int, int]:
    """Each thread of `pid`: its scheduling policy."""
    tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    return {tid: os.sched_getscheduler(tid) for tid in tids}


def test_the_daemon_runs_real_time_and_its_service_does_not(make_cluster: MakeCluster) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: SCHED_RR and mlockall need CAP_SYS_NICE and CAP_IPC_LOCK")
    cluster: Cluster = make_cluster()
    primary = cluster.primary
    start_primary_alone(cluster)
    log = primary.log_text()
    assert "SCHED_RR priority 10 for the event loop and the API" in log
    assert "memory locked" in log
    assert "running without" not in log

    daemon = primary.daemon.pid
    assert daemon is not None
    threads = policies(daemon)
    assert threads[daemon] == RR_RESET  # the event loop
    real_time = [tid for tid, policy in threads.items() if policy == RR_RESET]
    assert len(real_time) == 2, threads  # the loop and the API; executor threads are normal
    assert os.sched_getparam(daemon).sched_priority == 10
    assert locked_kb(daemon) > 0

    service = primary.service_pid()
    assert service is not None
    assert set(policies(service).values()) == {os.SCHED_OTHER}
    assert locked_kb(service) == 0
