"""Failovers with real daemons: the primary killed, its service down, its shutdown hanging."""

import os
import signal
import time
from typing import Any

import pytest

from failoverd.core.types import SafetyMode
from failoverd.demo.cluster import NodePlan, Tweak, python_module
from tests.integration.conftest import TIMEOUT, MakeCluster, records, start_settled


def test_primary_killed_standby_takes_over(make_cluster: MakeCluster) -> None:
    cluster = start_settled(make_cluster(SafetyMode.WITNESS))
    primary, standby = cluster.primary, cluster.standby
    with cluster.dual_watch() as watch:
        killed = time.monotonic()
        cluster.kill_node(primary)
        greeting = standby.wait_serving(TIMEOUT)
        print(f"failover (kill -9 -> standby's POP3 answering): {time.monotonic() - killed:.3f}s")
        standby.wait_state("active", TIMEOUT)
    assert greeting == f"+OK {standby.name} ready"
    assert primary.pop3() is None
    journal = standby.journal()
    [detected] = [r for r in journal if r["to"] == "taking_over"]
    assert detected["details"]["cause"] == "peer_silent"
    assert f"no heartbeat from {primary.name}" in str(detected["reason"])
    assert records(journal, "command", f"sending SHUTDOWN_YOUR_SERVICE to {primary.name}")
    assert records(journal, "command", f"{primary.name} answered UNREACHABLE")
    assert records(journal, "takeover", "lease for epoch 2 granted by")
    assert watch.samples > 0 and not watch.overlaps


def _patient_remote_check(plan: NodePlan, data: dict[str, Any]) -> None:
    """Let the standby's own probe of the primary's service fail late, so that the
    primary's report about its own checks is what triggers the failover."""
    for check in data["check"]:
        if check["scope"] == "remote":
            check["fall"] = 50


def test_primary_service_down_while_its_daemon_lives(make_cluster: MakeCluster) -> None:
    cluster = start_settled(make_cluster(tweak=_patient_remote_check))
    primary, standby = cluster.primary, cluster.standby
    service_pid = primary.service_pid()
    assert service_pid is not None
    os.kill(service_pid, signal.SIGKILL)
    standby.wait_serving(TIMEOUT)
    standby.wait_state("active", TIMEOUT)
    primary.wait_state("standby", TIMEOUT)
    assert primary.daemon.alive
    [detected] = [r for r in standby.journal() if r["to"] == "taking_over"]
    assert detected["details"]["cause"] == "peer_checks_failed"
    assert f"{primary.name} reports its own checks failing: pop3" in str(detected["reason"])
    assert records(standby.journal(), "command", f"{primary.name} answered CONFIRMED")
    assert records(primary.journal(), "command", f"{standby.name} sent SHUTDOWN_YOUR_SERVICE")
    assert records(primary.journal(), "script", "shutdown scripts succeeded")


def _hanging_shutdown(safety: SafetyMode) -> Tweak:
    """The primary's shutdown script hangs past its timeout; the standby waits 1s for an answer
    and, in fence mode, fences the primary by stopping its service and leaving a marker."""

    def tweak(plan: NodePlan, data: dict[str, Any]) -> None:
        _patient_remote_check(plan, data)
        data["timing"]["shutdown_timeout"] = "1s"
        if plan.preference.value == "primary":
            data["scripts"]["shutdown"] = [{"command": "sleep 30", "timeout": "4s"}]
        if safety is SafetyMode.FENCE:
            peer_pidfile = plan.home.parent / data["peer"]["name"] / "pop3.pid"
            marker = plan.home / "fenced"
            stop = python_module("failoverd.demo.service", "stop", "--pidfile", str(peer_pidfile))
            data["scripts"]["fence"] = [{"command": f"touch {marker} && {stop}", "timeout": "5s"}]

    return tweak


@pytest.mark.parametrize("safety", [SafetyMode.COOPERATIVE, SafetyMode.FENCE])
def test_hanging_shutdown_script_takes_the_timeout_path(
    make_cluster: MakeCluster, safety: SafetyMode
) -> None:
    cluster = start_settled(make_cluster(safety, tweak=_hanging_shutdown(safety)))
    primary, standby = cluster.primary, cluster.standby
    service_pid = primary.service_pid()
    assert service_pid is not None
    os.kill(service_pid, signal.SIGKILL)
    standby.wait_serving(TIMEOUT)
    standby.wait_state("active", TIMEOUT)
    journal = standby.journal()
    kinds = [(r["kind"], str(r["reason"])) for r in journal]
    sent = kinds.index(
        (
            "command",
            f"sending SHUTDOWN_YOUR_SERVICE to {primary.name}: "
            f"{primary.name} reports its own checks failing: pop3",
        )
    )
    [started] = [i for i, (kind, _) in enumerate(kinds) if kind == "takeover" and i > sent]
    assert not records(journal[sent:started], "command", "answered"), "no answer came in time"
    if safety is SafetyMode.COOPERATIVE:
        assert "no answer within shutdown_timeout" in kinds[started][1]
    else:
        [fencing] = [i for i, (kind, why) in enumerate(kinds) if why.startswith("fencing ")]
        [fenced] = [i for i, (kind, why) in enumerate(kinds) if "fence scripts succeeded" in why]
        assert sent < fencing < fenced < started
        assert kinds[started][1].endswith(": fenced")
        assert (standby.plan.home / "fenced").exists()
    # The primary's hanging script is killed at its own timeout: the primary is left FAILED.
    primary.wait_state("failed", TIMEOUT)
    assert records(primary.journal(), "script", "shutdown scripts failed")
