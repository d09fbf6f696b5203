"""The lab's POP3 client and the analysis of what it saw.

`Pop3Client` runs `failoverd.lab.client_probe` in the `client` host; it logs
in through HAProxy every `interval` on a new connection and records, per
attempt, which node answered (from the banner) or the error. `ClientLog`
reads those records and answers the scenario questions: how long until a
node answered after an instant, when the service was failing, and whether
two nodes answered in overlapping periods.

Times are `time.monotonic()` values, the same clock in every process of the
machine, so they compare directly with the test's own instants.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from failoverd.lab.netns import Host, LabError, LabProcess

_POLL = 0.02


@dataclass(frozen=True, slots=True)
class Attempt:
    """One login attempt: when, how long, and who answered or what failed."""

    seq: int
    start: float  # monotonic
    wall: float
    elapsed: float
    ok: bool
    node: str | None  # from the banner; also set when the login failed after it
    error: str | None
    banner: str | None

    @property
    def end(self) -> float:
        return self.start + self.elapsed


@dataclass(frozen=True, slots=True)
class ErrorPeriod:
    """Consecutive failed attempts, from the first's start to the last's end."""

    start: float
    end: float
    count: int
    errors: tuple[str, ...]  # distinct error texts, in order of appearance

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class NodeRun:
    """Consecutive successful answers by one node (failures in between do not split a run)."""

    node: str
    first: float  # start of the first answer
    last: float  # end of the last answer
    count: int


class ClientLog:
    """The attempts of one client run, in order, with the scenario queries."""

    def __init__(self, attempts: Iterable[Attempt]) -> None:
        self.attempts = tuple(sorted(attempts, key=lambda a: a.start))

    @classmethod
    def load(cls, path: Path) -> ClientLog:
        """Read the JSON lines (a missing file is an empty log; a torn last line is skipped)."""
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            return cls([])
        attempts = []
        for number, line in enumerate(lines, 1):
            try:
                attempts.append(Attempt(**json.loads(line)))
            except (ValueError, TypeError) as e:
                if number < len(lines):
                    raise LabError(f"{path}:{number}: bad record: {e}") from e
        return cls(attempts)

    def __len__(self) -> int:
        return len(self.attempts)

    def __iter__(self) -> Iterator[Attempt]:
        return iter(self.attempts)

    @property
    def ok(self) -> list[Attempt]:
        return [a for a in self.attempts if a.ok]

    @property
    def failed(self) -> list[Attempt]:
        return [a for a in self.attempts if not a.ok]

    def between(self, start: float, end: float = math.inf) -> ClientLog:
        """The attempts that started in [start, end)."""
        return ClientLog(a for a in self.attempts if start <= a.start < end)

    def answers_by_node(self) -> Counter[str]:
        return Counter(a.node for a in self.attempts if a.ok and a.node is not None)

    def first_answer(self, after: float, node: str | None = None) -> Attempt | None:
        """The first successful attempt started at or after `after` (by `node`, if given)."""
        for a in self.attempts:
            if a.start >= after and a.ok and (node is None or a.node == node):
                return a
        return None

    def time_to_answer(self, after: float, node: str | None = None) -> float | None:
        """Seconds from `after` until a successful answer (by `node`) was complete, or None."""
        a = self.first_answer(after, node)
        return None if a is None else a.end - after

    def last_answer(self, node: str | None = None, before: float = math.inf) -> Attempt | None:
        """The last successful attempt started before `before` (by `node`, if given)."""
        for a in reversed(self.attempts):
            if a.start < before and a.ok and (node is None or a.node == node):
                return a
        return None

    def error_periods(self) -> list[ErrorPeriod]:
        """Maximal runs of consecutive failed attempts."""
        periods: list[ErrorPeriod] = []
        run: list[Attempt] = []
        for a in (*self.attempts, None):
            if a is not None and not a.ok:
                run.append(a)
                continue
            if run:
                errors = tuple(dict.fromkeys(x.error or "?" for x in run))
                periods.append(ErrorPeriod(run[0].start, run[-1].end, len(run), errors))
                run = []
        return periods

    def runs(self) -> list[NodeRun]:
        """Maximal runs of successful answers by the same node, in order."""
        runs: list[NodeRun] = []
        for a in self.ok:
            node = a.node or "?"
            if runs and runs[-1].node == node:
                r = runs[-1]
                runs[-1] = NodeRun(node, r.first, a.end, r.count + 1)
            else:
                runs.append(NodeRun(node, a.start, a.end, 1))
        return runs

    def interleavings(self, within: float) -> list[tuple[NodeRun, NodeRun, NodeRun]]:
        """Evidence of two nodes serving at once: node X, then Y, then X again within `within` s.

        A failover is X...X Y...Y; a failback later is X...X Y...Y X...X with a
        long Y period. X answering both just before and just after Y means
        the load balancer was spreading logins over both nodes.
        """
        runs = self.runs()
        return [
            (x, y, z)
            for x, y, z in zip(runs, runs[1:], runs[2:], strict=False)
            if x.node == z.node and z.first - x.last <= within
        ]


class Pop3Client(LabProcess):
    """The client loop in a host (normally `client`), bounded in attempts and time."""

    def __init__(
        self,
        host: Host,
        target: tuple[str, int],
        out: Path,
        *,
        nodes: Sequence[str],
        user: str = "alice",
        password: str = "secret",
        interval: float = 0.05,
        timeout: float = 1.0,
        max_seconds: float = 300.0,
        max_attempts: int | None = None,
    ) -> None:
        if not 0 < max_seconds <= 3600:
            raise ValueError(f"max_seconds must be in (0, 3600], got {max_seconds}")
        if interval <= 0 or timeout <= 0:
            raise ValueError("interval and timeout must be positive")
        self.out = out
        self.password_file = out.with_name(f"{out.stem}.password")
        self.password = password
        attempts = max_attempts or math.ceil(max_seconds / interval) + 1
        argv = [
            sys.executable, "-m", "failoverd.lab.client_probe",
            "--connect", f"{target[0]}:{target[1]}", "--out", str(out),
            "--user", user, "--password-file", str(self.password_file),
            "--interval", str(interval), "--timeout", str(timeout),
            "--max-attempts", str(attempts), "--max-seconds", str(max_seconds),
            *(arg for node in nodes for arg in ("--node", node)),
        ]  # fmt: skip
        super().__init__(host, argv, out.with_suffix(".log"))

    def start(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.password)
        super().start()

    def log(self) -> ClientLog:
        """What the client has recorded so far."""
        return ClientLog.load(self.out)

    def wait_for(self, predicate: Callable[[ClientLog], bool], timeout: float) -> ClientLog:
        """Poll the log until `predicate` holds; LabError after `timeout` or if the client ended."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()
            if predicate(log):
                return log
            if not self.running:
                raise LabError(f"the client ended ({len(log)} attempts); see {self.log_path}")
            if time.monotonic() > deadline:
                raise LabError(
                    f"client log: condition not met after {timeout}s ({len(log)} attempts)"
                )
            time.sleep(_POLL)
