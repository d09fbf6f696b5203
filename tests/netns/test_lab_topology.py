"""The lab's topology: up, reachable, isolated from the host, and gone afterwards."""

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from failoverd.lab.faults import probe_udp
from failoverd.lab.netns import OWNERS_DIR, LabUnavailable, Topology, cleanup_stale, run_command
from tests.netns.probes import alive, tcp_connects, wait_until

# A lab in a child process that prints its namespaces and a process in `primary`,
# then waits (bounded) for the test to signal or kill it.
# The child starts as from a terminal: SIGINT at Python's default. A test run started
# in the background by a non-interactive shell inherits SIGINT ignored, and the lab
# rightly leaves an ignored signal ignored.
CHILD = """
import json, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
from failoverd.lab.netns import Topology
with Topology(prefix=sys.argv[1]) as t:
    p = t.primary.popen(["sleep", "60"])
    print(json.dumps({"namespaces": t.namespaces, "pid": p.pid}), flush=True)
    time.sleep(30)
"""


def netns_names() -> set[str]:
    d = Path("/run/netns")
    return {p.name for p in d.iterdir()} if d.is_dir() else set()


@pytest.mark.root
def test_up_and_down_leaves_nothing_behind() -> None:
    with Topology() as lab:
        names = set(lab.namespaces)
        assert names == {f"{lab.run_id}-{h}" for h in ("br", *lab.hosts)}
        assert names <= netns_names()
        assert (OWNERS_DIR / f"{lab.run_id}.json").exists()
        run_dir = lab.run_dir
        assert run_dir.is_dir()
        proc = lab.primary.popen(["sh", "-c", "sleep 60 & wait"])
        assert wait_until(lambda: len(lab.primary.pids()) == 2, 5)
        inner = lab.primary.pids()
    assert not names & netns_names()
    assert not (OWNERS_DIR / f"{lab.run_id}.json").exists()
    assert not run_dir.exists()
    assert proc.returncode == -signal.SIGKILL
    assert not any(alive(pid) for pid in inner)
    lab.close()  # idempotent


@pytest.mark.root
def test_hosts_reach_each_other_and_only_inside_the_lab(lab: Topology) -> None:
    for a, b in itertools.combinations(lab.hosts.values(), 2):
        assert probe_udp(a, b, 5).returned == 5, (a, b)
    assert tcp_connects(lab, "client", "lb")
    prefix = lab.subnet.rsplit(".", 1)[0] + "."
    assert prefix not in run_command(["ip", "-o", "addr"]).stdout
    bridge = run_command(["ip", "-n", lab.bridge_ns, "-o", "link", "show", "master", "br0"])
    assert bridge.stdout.count("master br0") == len(lab.hosts)


@pytest.mark.root
def test_teardown_runs_when_the_body_fails() -> None:
    lab = Topology()
    with pytest.raises(RuntimeError, match="test body failed"), lab:
        tracked = lab.standby.popen(["sleep", "60"])
        # Not started through the lab, but in its namespace: the sweep gets it too.
        stray = subprocess.Popen(["ip", "netns", "exec", lab.witness.ns, "sleep", "60"])
        assert wait_until(lambda: stray.pid in lab.witness.pids(), 5)
        raise RuntimeError("test body failed")
    assert not set(lab.namespaces) & netns_names()
    assert tracked.returncode == -signal.SIGKILL
    assert stray.wait(5) == -signal.SIGKILL


def start_child(prefix: str) -> tuple[subprocess.Popen[str], list[str], int]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, prefix], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    info = json.loads(child.stdout.readline())
    assert set(info["namespaces"]) <= netns_names()
    return child, info["namespaces"], info["pid"]


@pytest.mark.root
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_tears_the_lab_down(sig: signal.Signals) -> None:
    child, namespaces, pid = start_child("fodsig")
    child.send_signal(sig)
    child.wait(10)
    assert not set(namespaces) & netns_names()
    assert not alive(pid)


@pytest.mark.root
def test_cleanup_stale_removes_a_killed_runs_leftovers_only() -> None:
    with Topology(prefix="fodstale") as live:
        child, namespaces, pid = start_child("fodstale")
        child.kill()  # no chance to clean up
        child.wait(5)
        assert set(namespaces) <= netns_names()
        removed = cleanup_stale("fodstale")
        assert sorted(removed) == sorted(namespaces)
        assert not set(namespaces) & netns_names()
        assert not alive(pid)
        assert set(live.namespaces) <= netns_names()  # a live run is left alone
    assert cleanup_stale("fodstale") == []


def test_require_refuses_without_root_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LabUnavailable, match=r"^the network lab needs root.*uid 1000$"):
        Topology.require()


def test_require_refuses_without_ip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LabUnavailable, match=r"needs `ip` \(Debian: apt-get install iproute2\)"):
        Topology.require()


def test_bad_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="prefix"):
        Topology(prefix="Bad-Prefix")


@pytest.mark.root
def test_host_socket_lives_in_the_host(lab: Topology) -> None:
    with lab.primary.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((lab.primary.addr, 0))  # only that namespace has this address
    with pytest.raises(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((lab.primary.addr, 0))
