"""Metrics: what a scrape of GET /metrics shows after the runtime's calls."""

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from failoverd import wire
from failoverd.core.types import Cause, CheckScope, NodeState, Preference, SafetyMode, ScriptPhase
from failoverd.metrics import (
    FrameDropReason,
    Metrics,
    ScriptOutcome,
    frame_drop_reason,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scrape(m: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, content_type = m.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(m: Metrics, name: str, **labels: str) -> float:
    return scrape(m)[(name, frozenset(labels.items()))]


def label_values(m: Metrics, name: str, label: str) -> set[str]:
    return {dict(lbl)[label] for (n, lbl) in scrape(m) if n == name}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def m(clock: FakeClock) -> Metrics:
    return Metrics("cfg2", heartbeat_ack_timeout=1.0, loss_window=10, clock=clock)


def test_state_is_one_hot_over_every_state(m: Metrics) -> None:
    m.set_state(NodeState.STANDBY)
    m.set_state(NodeState.ACTIVE)
    states = {s.value: value(m, "failoverd_state", state=s.value) for s in NodeState}
    assert states == {s.value: (1.0 if s is NodeState.ACTIVE else 0.0) for s in NodeState}


def test_identity_mode_maintenance_epoch(m: Metrics) -> None:
    m.set_preference(Preference.STANDBY)
    m.set_preference(Preference.PRIMARY)  # after a reload: one info series, not two
    m.set_safety_mode(SafetyMode.WITNESS)
    m.set_maintenance(True)
    m.set_epoch(7)
    info = [lbl for (n, lbl) in scrape(m) if n == "failoverd_node_info"]
    assert len(info) == 1
    assert dict(info[0])["node"] == "cfg2"
    assert dict(info[0])["preference"] == "primary"
    assert value(m, "failoverd_safety_mode", mode="witness") == 1
    assert value(m, "failoverd_safety_mode", mode="cooperative") == 0
    assert value(m, "failoverd_maintenance") == 1
    assert value(m, "failoverd_epoch") == 7


def test_check_result_latency_and_failures(m: Metrics) -> None:
    m.check_result("pop3", CheckScope.REMOTE, True, 0.02, 0)
    m.check_result("pop3", CheckScope.REMOTE, False, 1.5, 1)
    m.check_result("pop3", CheckScope.REMOTE, False, 1.5, 2)
    labels = {"check": "pop3", "scope": "remote"}
    assert value(m, "failoverd_check_up", **labels) == 0
    assert value(m, "failoverd_check_consecutive_failures", **labels) == 2
    assert value(m, "failoverd_check_latency_seconds_count", **labels) == 3
    assert value(m, "failoverd_check_latency_seconds_sum", **labels) == pytest.approx(3.02)
    assert value(m, "failoverd_check_latency_seconds_bucket", le="0.025", **labels) == 1

    m.forget_check("pop3", CheckScope.REMOTE)
    assert label_values(m, "failoverd_check_up", "check") == set()


def test_heartbeat_rtt_and_loss_per_address(m: Metrics, clock: FakeClock) -> None:
    a, b = "10.0.0.2:7890", "10.1.0.2:7890"
    for seq in range(10):
        m.heartbeat_sent(a, seq)
        m.heartbeat_sent(b, seq)
        if seq % 2 == 0:  # path b loses every other heartbeat
            m.heartbeat_acked(b, seq, 0.002)
        m.heartbeat_acked(a, seq, 0.001)
        clock.now += 0.2
    # b's unacked seqs 7 and 9 are younger than the 1 s ack timeout: in flight, not lost yet;
    # 1, 3 and 5 are lost, out of 8 settled.
    assert value(m, "failoverd_heartbeat_loss_ratio", address=a) == 0
    assert value(m, "failoverd_heartbeat_loss_ratio", address=b) == pytest.approx(3 / 8)
    clock.now += 1.0
    assert value(m, "failoverd_heartbeat_loss_ratio", address=b) == pytest.approx(5 / 10)
    assert value(m, "failoverd_heartbeat_rtt_seconds_count", address=a) == 10
    assert value(m, "failoverd_heartbeat_rtt_seconds_count", address=b) == 5
    assert value(m, "failoverd_heartbeats_sent_total", address=b) == 10
    assert value(m, "failoverd_heartbeats_acked_total", address=b) == 5


def test_loss_window_slides_and_a_dead_path_reads_one(m: Metrics, clock: FakeClock) -> None:
    addr = "10.0.0.2:7890"
    for seq in range(10):  # a window's worth of lost heartbeats...
        m.heartbeat_sent(addr, seq)
        clock.now += 0.2
    for seq in range(10, 20):  # ...then a window's worth of acknowledged ones
        m.heartbeat_sent(addr, seq)
        m.heartbeat_acked(addr, seq, 0.001)
    assert value(m, "failoverd_heartbeat_loss_ratio", address=addr) == 0
    for seq in range(20, 30):
        m.heartbeat_sent(addr, seq)
    clock.now += 1.0
    assert value(m, "failoverd_heartbeat_loss_ratio", address=addr) == 1


def test_duplicate_unknown_and_evicted_acks_are_ignored(m: Metrics) -> None:
    addr = "10.0.0.2:7890"
    m.heartbeat_sent(addr, 1)
    m.heartbeat_acked(addr, 1, 0.001)
    m.heartbeat_acked(addr, 1, 0.001)  # duplicated on the wire
    m.heartbeat_acked(addr, 99, 0.001)  # never sent
    m.heartbeat_acked("192.0.2.9:1", 1, 0.001)  # not a peer address: no new series
    for seq in range(2, 20):
        m.heartbeat_sent(addr, seq)
    m.heartbeat_acked(addr, 2, 0.001)  # evicted from the 10-heartbeat window
    assert value(m, "failoverd_heartbeats_acked_total", address=addr) == 1
    assert label_values(m, "failoverd_heartbeat_rtt_seconds_count", "address") == {addr}


def test_loss_is_nan_before_any_heartbeat_settled(m: Metrics) -> None:
    m.heartbeat_sent("10.0.0.2:7890", 1)
    assert math.isnan(value(m, "failoverd_heartbeat_loss_ratio", address="10.0.0.2:7890"))


def test_failovers_by_reason_are_a_closed_set(m: Metrics) -> None:
    m.failover_started(Cause.PEER_SILENT)
    m.failover_started("peer_silent")
    m.failover_started("primary's pop3 check failed 3 times")  # free text: not a new label
    m.failover_finished(2.5)
    assert value(m, "failoverd_failovers_total", reason="peer_silent") == 2
    assert value(m, "failoverd_failovers_total", reason="other") == 1
    assert label_values(m, "failoverd_failovers_total", "reason") == {"peer_silent", "other"}
    assert value(m, "failoverd_last_failover_duration_seconds") == 2.5


def test_frames_dropped_are_a_closed_set(m: Metrics) -> None:
    m.frame_dropped(wire.BadSignature("bad HMAC from 10.0.0.2"))
    m.frame_dropped(wire.ConnectionClosed("closed"))
    m.frame_dropped(FrameDropReason.REPLAYED)
    for i in range(50):
        m.frame_dropped(f"garbage {i}")
    assert label_values(m, "failoverd_frames_dropped_total", "reason") == {
        "forged",
        "truncated",
        "replayed",
        "other",
    }
    assert value(m, "failoverd_frames_dropped_total", reason="other") == 50


def test_lease_remaining_is_nan_without_a_lease(m: Metrics) -> None:
    assert math.isnan(value(m, "failoverd_lease_remaining_seconds"))
    m.set_lease_remaining(3.25)
    assert value(m, "failoverd_lease_remaining_seconds") == 3.25
    m.set_lease_remaining(-0.1)  # past due: shown as 0, not negative
    assert value(m, "failoverd_lease_remaining_seconds") == 0
    m.set_lease_remaining(None)
    assert math.isnan(value(m, "failoverd_lease_remaining_seconds"))


def test_loop_lag_gauge_and_histogram(m: Metrics) -> None:
    m.loop_lag(0.003)
    m.loop_lag(0.2)
    assert value(m, "failoverd_event_loop_last_lag_seconds") == 0.2
    assert value(m, "failoverd_event_loop_lag_seconds_count") == 2
    assert value(m, "failoverd_event_loop_lag_seconds_bucket", le="0.005") == 1


def test_alerts_and_scripts(m: Metrics) -> None:
    m.alert_result("mail", True)
    m.alert_result("webhook", False)
    m.alert_result("pager", False)  # unknown channel: bounded
    m.alert_dropped("mail")
    m.script_finished(ScriptPhase.STARTUP, ScriptOutcome.OK, 1.2)
    m.script_finished(ScriptPhase.SHUTDOWN, ScriptOutcome.TIMEOUT, 10.0)
    assert value(m, "failoverd_alerts_sent_total", channel="mail") == 1
    assert value(m, "failoverd_alerts_failed_total", channel="webhook") == 1
    assert value(m, "failoverd_alerts_failed_total", channel="other") == 1
    assert value(m, "failoverd_alerts_dropped_total", channel="mail") == 1
    assert value(m, "failoverd_script_runs_total", phase="startup", outcome="ok") == 1
    assert value(m, "failoverd_script_runs_total", phase="shutdown", outcome="timeout") == 1
    assert value(m, "failoverd_script_duration_seconds_count", phase="shutdown") == 1


def test_registries_are_private(clock: FakeClock) -> None:
    a = Metrics("cfg1", clock=clock)
    b = Metrics("cfg2", clock=clock)
    a.set_epoch(3)
    assert value(a, "failoverd_epoch") == 3
    assert value(b, "failoverd_epoch") == 0
    assert b"python_gc" not in b.render()[0]  # not the global registry


def test_openmetrics_when_the_scraper_asks_for_it(m: Metrics) -> None:
    m.set_epoch(7)
    body, content_type = m.render("application/openmetrics-text; version=1.0.0,text/plain;q=0.5")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    assert b"failoverd_epoch 7.0" in body


def test_every_wire_error_has_a_reason_of_its_own() -> None:
    errors = [
        cls
        for cls in vars(wire).values()
        if isinstance(cls, type) and issubclass(cls, wire.WireError) and cls is not wire.WireError
    ]
    assert errors
    assert all(frame_drop_reason(cls("x")) is not FrameDropReason.OTHER for cls in errors)
