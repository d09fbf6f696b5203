"""What the lab's own tests look at: a condition within a deadline, a TCP connect, a process."""

import time
from collections.abc import Callable
from pathlib import Path

from failoverd.lab.netns import Topology


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Whether `condition` came true within `timeout` seconds (polled every 20 ms)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def tcp_connects(lab: Topology, src: str, dst: str, timeout: float = 0.5) -> bool:
    """Whether host `src` can open a TCP connection to a listener on host `dst`."""
    with lab[dst].socket() as server, lab[src].socket() as client:
        server.bind((lab[dst].addr, 0))
        server.listen()
        client.settimeout(timeout)
        return client.connect_ex(server.getsockname()) == 0


def process_state(pid: int) -> str | None:
    """The one-letter state in /proc/PID/stat (R, S, T, Z...), None once the PID is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[0]


def alive(pid: int) -> bool:
    """Running (a zombie left for a non-reaping PID 1 counts as dead)."""
    return process_state(pid) not in (None, "Z")
