"""The demo's POP3 service and its start/stop scripts, as real processes."""

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from failoverd.demo import service
from failoverd.demo.ports import LOOPBACK, free_ports


def script(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m failoverd.demo.service ARGS`, as the daemon's script runner would run it."""
    argv = [sys.executable, "-m", "failoverd.demo.service", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


class Pop3Client:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((LOOPBACK, port), timeout=5)
        self.lines = self.sock.makefile("rb")

    def read(self) -> str:
        return self.lines.readline().decode().rstrip("\r\n")

    def ask(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.read()

    def close(self) -> None:
        self.lines.close()
        self.sock.close()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A started service (pidfile, port), user demo with password 'pw'; stopped afterwards."""
    password = tmp_path / "password"
    password.write_text("pw\n")
    pidfile = tmp_path / "pop3.pid"
    [port] = free_ports(1)
    argv = ["start", "--pidfile", str(pidfile), "--log", str(tmp_path / "pop3.log")]
    argv += ["--port", str(port), "--name", "alpha", "--user", "demo"]
    argv += ["--password-file", str(password)]
    done = script(*argv)
    assert done.returncode == 0, done.stderr
    try:
        yield pidfile, port
    finally:
        service.stop(pidfile)


def test_pop3_dialogue(running: tuple[Path, int]) -> None:
    _, port = running
    client = Pop3Client(port)
    try:
        assert client.read() == "+OK alpha ready"
        assert client.ask("STAT").startswith("-ERR")
        assert client.ask("USER demo").startswith("+OK")
        assert client.ask("PASS wrong") == "-ERR invalid user or password"
        assert client.ask("PASS pw").startswith("-ERR"), "PASS needs a USER first"
        assert client.ask("USER demo").startswith("+OK")
        assert client.ask("PASS pw").startswith("+OK")
        assert client.ask("STAT") == "+OK 0 0"
        assert client.ask("RETR 1").startswith("-ERR")
        assert client.ask("x" * 600) == "-ERR line too long"
    finally:
        client.close()
    client = Pop3Client(port)
    try:
        client.read()
        assert client.ask("quit") == "+OK alpha signing off"
        assert client.read() == ""  # closed
    finally:
        client.close()


def test_start_and_stop_are_idempotent(running: tuple[Path, int], tmp_path: Path) -> None:
    pidfile, _ = running
    pid = service.service_pid(pidfile)
    assert pid is not None
    again = script("start", "--pidfile", str(pidfile), "--log", str(tmp_path / "x.log"))
    assert again.returncode == 0, again.stderr
    assert f"pid {pid}" in again.stdout  # the running one, left alone
    for expected in (f"pop3 service {pid} stopped", "pop3 service not running"):
        done = script("stop", "--pidfile", str(pidfile))
        assert (done.returncode, done.stdout.strip()) == (0, expected)
    assert not pidfile.exists()


def test_a_pidfile_naming_another_process_is_never_signalled(tmp_path: Path) -> None:
    pidfile = tmp_path / "pop3.pid"
    pidfile.write_text(f"{os.getpid()}\n")  # a reused pid: this very test process
    assert service.service_pid(pidfile) is None
    assert service.stop(pidfile) is None
    assert not pidfile.exists()


def test_a_port_held_by_a_connection_fails_the_start_with_the_reason(tmp_path: Path) -> None:
    """What an ephemeral source port on the service's port does (why free_ports avoids them)."""
    with socket.socket() as listener, socket.socket() as client:
        listener.bind((LOOPBACK, 0))
        listener.listen()
        client.bind((LOOPBACK, 0))
        client.connect(listener.getsockname())
        port = client.getsockname()[1]
        log = tmp_path / "pop3.log"
        argv = ["start", "--pidfile", str(tmp_path / "pop3.pid"), "--log", str(log)]
        done = script(*argv, "--port", str(port), "--name", "beta")
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert "address already in use" in line and str(port) in line and str(log) in line
    assert "Traceback" not in log.read_text()
