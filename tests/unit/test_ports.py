"""Ports for services that bind later come from outside the kernel's ephemeral range."""

import socket
from pathlib import Path

import pytest

from failoverd.demo import ports
from failoverd.demo.ports import (
    LOOPBACK,
    NoFreePort,
    PortCycle,
    ephemeral_floor,
    free_ports,
    static_ports,
)


def test_ports_are_below_the_ephemeral_range_so_no_connection_can_take_them() -> None:
    chosen = free_ports(40)
    assert len(set(chosen)) == 40
    assert all(1024 <= port < ephemeral_floor() for port in chosen)


def test_a_port_once_handed_out_is_not_handed_out_again_soon() -> None:
    first = set(free_ports(20))
    assert not first & set(free_ports(20))


def test_the_ports_are_free_for_tcp_and_udp() -> None:
    for port in free_ports(5):
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind((LOOPBACK, port))


def test_a_port_in_use_is_skipped() -> None:
    [port] = free_ports(1)
    with socket.socket() as held:
        held.bind((LOOPBACK, port))
        # Go once round the whole space: the held port comes up again and is passed over.
        everything = len(static_ports(ephemeral_floor()))
        seen = {p for _ in range(everything // 500 + 1) for p in free_ports(500)}
    assert port not in seen


def test_the_floor_is_read_from_the_kernel_or_linux_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = tmp_path / "ip_local_port_range"
    monkeypatch.setattr(ports, "EPHEMERAL_RANGE", proc)
    proc.write_text("40000\t60999\n")
    assert ephemeral_floor() == 40000
    proc.write_text("garbage\n")
    assert ephemeral_floor() == 32768
    proc.unlink()
    assert ephemeral_floor() == 32768


def test_static_ports_stay_above_the_privileged_ports() -> None:
    assert static_ports(32768) == range(32768 - 12288, 32768)
    assert static_ports(2000) == range(1024, 2000)
    assert len(static_ports(1024)) == 0


def test_no_room_below_the_ephemeral_range_is_a_clear_error() -> None:
    with pytest.raises(NoFreePort, match=r"ip_local_port_range"):
        PortCycle(static_ports(1024)).take(1)
