"""Faults really drop traffic (measured), stay inside the lab, and are reversed by healing."""

import os
import signal

import pytest

from failoverd.lab.faults import FaultKind, Faults, probe_udp
from failoverd.lab.netns import LabError, Topology, run_command
from tests.netns.probes import process_state, tcp_connects, wait_until

pytestmark = pytest.mark.root


def test_cut_drops_both_directions_for_udp_and_tcp_and_heals(lab: Topology, faults: Faults) -> None:
    p, s, w = lab.primary, lab.standby, lab.witness
    root_rules = run_command(["iptables", "-S"]).stdout
    cut = faults.cut(p, s)
    assert probe_udp(p, s).arrived == 0
    assert probe_udp(s, p).arrived == 0
    assert not tcp_connects(lab, "primary", "standby", timeout=0.3)
    assert probe_udp(p, w).returned == 20
    assert probe_udp(s, w).returned == 20
    assert run_command(["iptables", "-S"]).stdout == root_rules  # the host's own tables
    faults.heal(cut)
    assert probe_udp(p, s).returned == 20
    assert tcp_connects(lab, "primary", "standby")
    assert [(e.action, e.kind) for e in faults.timeline] == [
        ("inject", FaultKind.CUT),
        ("heal", FaultKind.CUT),
    ]
    assert faults.active == []


def test_isolate_drops_everything_but_loopback(lab: Topology, faults: Faults) -> None:
    p, s, w = lab.primary, lab.standby, lab.witness
    faults.isolate(p)
    assert probe_udp(p, s).arrived == 0
    assert probe_udp(w, p).arrived == 0
    assert probe_udp(p, p).returned == 20  # to its own address: over lo
    assert probe_udp(s, w).returned == 20
    faults.heal_all()
    assert probe_udp(w, p).returned == 20


def test_loss_drops_about_the_given_share_in_each_direction(lab: Topology, faults: Faults) -> None:
    p, s, w = lab.primary, lab.standby, lab.witness
    faults.loss(p, s, 0.3)
    forward = probe_udp(p, s, 200)
    backward = probe_udp(s, p, 200)
    # Binomial: the standard deviation of each share is below 0.04; these bounds are > 3.5 of it.
    for share in (forward.forward_loss, forward.return_loss, backward.forward_loss):
        assert 0.15 <= share <= 0.45, (forward, backward)
    assert probe_udp(p, w, 100).returned == 100
    faults.heal_all()
    assert probe_udp(p, s, 100).returned == 100


def test_loss_probability_must_be_a_share(lab: Topology, faults: Faults) -> None:
    with pytest.raises(ValueError, match="probability"):
        faults.loss(lab.primary, lab.standby, 30)


def test_flap_toggles_the_link_and_stops_healed_by_itself(lab: Topology, faults: Faults) -> None:
    p, s = lab.primary, lab.standby
    flap = faults.flap(p, s, period=0.3, duration=1.5)
    assert wait_until(lambda: probe_udp(p, s, 3, wait=0.05).arrived == 0, 1.5)
    assert wait_until(lambda: probe_udp(p, s, 3, wait=0.05).arrived == 3, 1.5)
    flap.join(5.0)
    assert not flap.running
    assert flap.cycles >= 2
    assert probe_udp(p, s).returned == 20
    kinds = [(e.action, e.kind) for e in faults.timeline]
    assert kinds[0] == ("inject", FaultKind.FLAP)
    assert kinds[-1] == ("heal", FaultKind.FLAP)
    assert kinds.count(("inject", FaultKind.CUT)) == kinds.count(("heal", FaultKind.CUT)) >= 2
    assert faults.active == []


def test_flap_is_bounded(lab: Topology, faults: Faults) -> None:
    with pytest.raises(ValueError, match="duration"):
        faults.flap(lab.primary, lab.standby, period=1.0, duration=7200)


def test_kill_host_kills_its_processes_and_takes_its_link_down(
    lab: Topology, faults: Faults
) -> None:
    p, s = lab.primary, lab.standby
    direct = p.popen(["sleep", "60"])
    parent = p.popen(["sh", "-c", "sleep 60 & wait"])
    assert wait_until(lambda: len(p.pids()) == 3, 5)
    other = s.popen(["sleep", "60"])
    fault = faults.kill_host(p)
    assert p.pids() == []
    assert direct.returncode == parent.returncode == -signal.SIGKILL
    assert other.poll() is None  # other hosts are untouched
    assert probe_udp(s, p).arrived == 0
    faults.heal(fault)
    assert wait_until(lambda: probe_udp(s, p, 5).returned == 5, 5)


def test_sigstop_freezes_a_lab_process_until_sigcont(lab: Topology, faults: Faults) -> None:
    proc = lab.standby.popen(["sleep", "60"])
    assert wait_until(lambda: proc.pid in lab.standby.pids(), 5)
    faults.sigstop(proc.pid)
    assert wait_until(lambda: process_state(proc.pid) == "T", 5)
    faults.sigcont(proc.pid)
    assert wait_until(lambda: process_state(proc.pid) == "S", 5)
    with pytest.raises(LabError, match="not stopped"):
        faults.sigcont(proc.pid)
    with pytest.raises(LabError, match="not a process of lab"):
        faults.sigstop(os.getpid())
    proc.kill()
    proc.wait(5)
