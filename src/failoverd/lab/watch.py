"""Who serves, sampled: each node's POP3 port and /health, polled in a bounded loop.

The client sees the service through HAProxy, which hides a second node
serving behind the first. `ServiceWatch` looks at each node directly, every
`interval`, from a thread of the lab's own process:

- `serving`: the node's POP3 port greets `+OK`, probed from inside the
  node's own namespace (over its loopback), so that a cut or isolated
  node's Dovecot is still seen;
- `healthy`: the node's `GET /health` answers 200 as HAProxy asks it, from
  the `lb` host (a node HAProxy cannot reach counts as not healthy).

Two nodes serving in the same sample is dual activity; the sum of such
sample periods is the figure the scenarios report.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from failoverd.lab.netns import Host

PROBE_TIMEOUT = 0.3
MAX_WATCH_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class Sample:
    """One round: per node, whether its POP3 port greeted and whether /health said 200."""

    at: float  # monotonic, the start of the round
    serving: tuple[str, ...]
    healthy: tuple[str, ...]


def pop3_greets(host: Host, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether `host`'s own POP3 port greets with +OK, asked from inside `host`."""
    try:
        with host.socket() as s:
            s.settimeout(timeout)
            s.connect((host.addr, port))
            return s.recv(64).startswith(b"+OK")
    except OSError:
        return False


def http_status(
    client: Host, addr: str, port: int, path: str, timeout: float = PROBE_TIMEOUT
) -> int | None:
    """The status code of `GET path` at addr:port, asked from `client`; None if no answer."""
    try:
        with client.socket() as s:
            s.settimeout(timeout)
            s.connect((addr, port))
            s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
            head = s.recv(64).split(b"\r\n", 1)[0].split()
    except OSError:
        return None
    return int(head[1]) if len(head) >= 2 and head[1].isdigit() else None


class ServiceWatch:
    """Samples every node each `interval` until stopped or `max_seconds` have passed."""

    def __init__(
        self,
        nodes: Sequence[Host],
        lb: Host,
        *,
        pop3_port: int,
        api_port: int,
        interval: float = 0.1,
        max_seconds: float = 1800.0,
    ) -> None:
        if not 0 < max_seconds <= MAX_WATCH_SECONDS:
            raise ValueError(f"max_seconds must be in (0, {MAX_WATCH_SECONDS}]")
        self.nodes = list(nodes)
        self.lb = lb
        self.pop3_port = pop3_port
        self.api_port = api_port
        self.interval = interval
        self.max_seconds = max_seconds
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="service watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5 * PROBE_TIMEOUT * len(self.nodes) + self.interval + 1)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            at = time.monotonic()
            serving = tuple(n.name for n in self.nodes if pop3_greets(n, self.pop3_port))
            healthy = tuple(
                n.name
                for n in self.nodes
                if http_status(self.lb, n.addr, self.api_port, "/health") == 200
            )
            with self._lock:
                self._samples.append(Sample(at, serving, healthy))
            self._stop.wait(max(0.0, at + self.interval - time.monotonic()))

    @property
    def samples(self) -> list[Sample]:
        with self._lock:
            return list(self._samples)

    def between(self, start: float, end: float = math.inf) -> list[Sample]:
        return [s for s in self.samples if start <= s.at < end]

    def latest(self) -> Sample | None:
        with self._lock:
            return self._samples[-1] if self._samples else None

    def wait_sample(self, after: float, timeout: float = 5.0) -> Sample | None:
        """The first sample taken at or after `after` (None if none comes within `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(StopIteration):
                return next(s for s in self.samples if s.at >= after)
            time.sleep(self.interval / 2)
        return None

    def dual_seconds(self, start: float = -math.inf, end: float = math.inf) -> float:
        """Seconds in which two or more nodes were serving, from the samples in [start, end).

        Each sample with two serving counts until the next sample (at most
        two intervals, so a stalled watch does not inflate it).
        """
        return _overlap(self.between(start, end), "serving", 2 * self.interval)

    def dual_healthy_seconds(self, start: float = -math.inf, end: float = math.inf) -> float:
        """As `dual_seconds`, for /health answering 200 on two nodes at once."""
        return _overlap(self.between(start, end), "healthy", 2 * self.interval)


def _overlap(samples: Sequence[Sample], field: str, cap: float) -> float:
    total = 0.0
    for i, s in enumerate(samples):
        if len(getattr(s, field)) >= 2:
            following = samples[i + 1].at if i + 1 < len(samples) else s.at + cap / 2
            total += min(following - s.at, cap)
    return total
