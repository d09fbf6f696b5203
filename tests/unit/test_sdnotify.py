"""The systemd notify exchange, against a real AF_UNIX datagram socket."""

import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from failoverd.sdnotify import SystemdNotifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """What systemd does: a datagram socket bound to a path, named by NOTIFY_SOCKET."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(path))
        s.settimeout(5)
        yield str(path), s


def receive(s: socket.socket) -> dict[str, str]:
    lines = s.recv(4096).decode().splitlines()
    return dict(line.split("=", 1) for line in lines)


def test_ready_status_watchdog_stopping(listener: tuple[str, socket.socket]) -> None:
    path, s = listener
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}
    n = SystemdNotifier.from_env(env)
    assert n.enabled
    assert n.watchdog_interval() == 5.0
    n.ready("standby; peer cfg1 active (epoch 7)")
    assert receive(s) == {"READY": "1", "STATUS": "standby; peer cfg1 active (epoch 7)"}
    n.status("active\n(epoch 8)")  # one line, whatever the caller passes
    assert receive(s) == {"STATUS": "active (epoch 8)"}
    n.watchdog()
    assert receive(s) == {"WATCHDOG": "1"}
    n.stopping()
    assert receive(s) == {"STOPPING": "1"}
    n.close()


def test_reloading_carries_the_monotonic_clock(listener: tuple[str, socket.socket]) -> None:
    path, s = listener
    n = SystemdNotifier(path)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    n.reloading("reloading configuration")
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    msg = receive(s)
    assert msg["RELOADING"] == "1"
    assert before <= int(msg["MONOTONIC_USEC"]) <= after
    assert msg["STATUS"] == "reloading configuration"
    n.ready()
    assert receive(s) == {"READY": "1"}


def test_abstract_socket() -> None:
    name = f"failoverd-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + name)
        s.settimeout(5)
        n = SystemdNotifier.from_env({"NOTIFY_SOCKET": "@" + name})
        n.ready()
        assert receive(s) == {"READY": "1"}


def test_from_env_removes_the_variables_so_children_do_not_inherit_them(
    listener: tuple[str, socket.socket],
) -> None:
    env = {"NOTIFY_SOCKET": listener[0], "WATCHDOG_USEC": "4000000", "PATH": "/bin"}
    SystemdNotifier.from_env(env)
    assert env == {"PATH": "/bin"}


def test_watchdog_meant_for_another_process_is_ignored(
    listener: tuple[str, socket.socket],
) -> None:
    path, s = listener
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}
    n = SystemdNotifier.from_env(env)
    assert n.watchdog_interval() is None
    n.watchdog()
    n.status("next")
    assert receive(s) == {"STATUS": "next"}  # no WATCHDOG=1 before it


def test_without_notify_socket_everything_is_a_no_op() -> None:
    n = SystemdNotifier.from_env({"WATCHDOG_USEC": "10000000"})
    assert not n.enabled
    assert n.watchdog_interval() is None
    n.ready("x")
    n.status("x")
    n.watchdog()
    n.reloading()
    n.stopping()


def test_send_errors_never_raise_and_warn_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    n = SystemdNotifier(str(tmp_path / "nobody-listens"), 10_000_000)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            n.ready()
            n.watchdog()
    assert len(caplog.records) == 1
    assert "cannot notify systemd" in caplog.records[0].getMessage()


def test_unsupported_socket_kind_is_disabled(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        n = SystemdNotifier("vsock:2:1234")
    assert not n.enabled
    n.ready()
    assert "not supported" in caplog.text
