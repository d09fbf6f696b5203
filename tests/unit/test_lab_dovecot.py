"""failoverd.lab.dovecot: the instance the lab and the integration tests run as "the service".

The start/stop commands are what failoverd's startup/shutdown scripts run, so
they must be idempotent, must not hold the caller's output pipe, and must
recover from a crashed master (a stale master.pid, possibly a zombie).
"""

import socket
import subprocess
import time
from pathlib import Path

import pytest

from failoverd.lab.dovecot import DovecotError, DovecotInstance, pid_alive

LOCAL = "127.0.0.1"


def script(command: str) -> subprocess.CompletedProcess[str]:
    """Run a start/stop command as a script runner would: output captured until EOF."""
    return subprocess.run(
        command, shell=True, capture_output=True, text=True, timeout=30, check=False
    )


def banner(port: int) -> str:
    with socket.create_connection((LOCAL, port), timeout=5) as s:
        return s.makefile("rb").readline().decode()


def refused(port: int) -> bool:
    try:
        socket.create_connection((LOCAL, port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_start_and_stop_commands_are_idempotent(dovecot: DovecotInstance) -> None:
    dovecot.stop()
    assert dovecot.pid is None
    for _ in range(2):
        started = script(dovecot.start_command())
        assert started.returncode == 0, started.stderr
    dovecot.wait_ready(10)
    master = dovecot.pid
    assert master is not None
    assert banner(dovecot.pop3_port).startswith("+OK")
    for _ in range(2):
        stopped = script(dovecot.stop_command())
        assert stopped.returncode == 0, stopped.stderr
    assert not pid_alive(master)
    assert dovecot.pid is None
    assert refused(dovecot.pop3_port)


def refused_within(port: int, timeout: float) -> bool:
    """SIGKILL reaches the master's children asynchronously: wait (bounded) for the port."""
    deadline = time.monotonic() + timeout
    while not refused(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_start_command_recovers_after_the_master_was_killed(dovecot: DovecotInstance) -> None:
    dovecot.kill()
    assert refused_within(dovecot.pop3_port, 5.0)
    for _ in range(2):  # the second round kills a daemon-mode master (stale master.pid)
        assert script(dovecot.start_command()).returncode == 0
        dovecot.wait_ready(10)
        master = dovecot.pid
        assert master is not None
        dovecot.kill()
        assert not pid_alive(master)
        assert dovecot.pid is None
    assert script(dovecot.start_command()).returncode == 0
    dovecot.wait_ready(10)
    assert script(dovecot.stop_command()).returncode == 0
    assert dovecot.pid is None


def test_a_failed_start_is_reported_with_the_log(dovecot: DovecotInstance) -> None:
    dovecot.stop()
    with socket.socket() as squatter:
        squatter.bind((LOCAL, dovecot.pop3_port))
        squatter.listen()
        dovecot.start()
        with pytest.raises(DovecotError, match="exited with status"):
            dovecot.wait_ready(10)
        failed = script(dovecot.start_command())
        assert failed.returncode != 0
        assert "Address already in use" in failed.stderr
    dovecot.stop()


def test_greeting_names_the_instance(dovecot: DovecotInstance) -> None:
    dovecot.stop()
    base = dovecot.base_dir / "named"
    with DovecotInstance(base, dovecot.pop3_port, greeting="node-a ready") as named:
        assert banner(named.pop3_port) == "+OK node-a ready\r\n"


def test_an_unreachable_directory_is_refused_before_dovecot_runs(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(DovecotError, match=f"{private} is not searchable by others"):
        DovecotInstance(private / "instance", 1).write_config()
