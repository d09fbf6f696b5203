"""Many schedules, on every core: counts, violations and the cooperative figures.

Schedule `index` of a run with `--mode all` has mode `MODES[index % 3]`; each
schedule is generated from (seed, index, mode) alone, so a worker's result
does not depend on which worker ran it or in which order.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.pool
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from failoverd.core.types import SafetyMode
from tests.sim.check import Verdict, run
from tests.sim.schedule import generate, mode_of

CHUNK = 50


@dataclass
class Failure:
    mode: SafetyMode
    seed: int
    index: int
    kind: str
    violations: list[str]
    trace: list[str]

    def replay_command(self) -> str:
        return f"python -m tests.sim --seed {self.seed} --mode {self.mode} --replay {self.index}"


@dataclass
class ModeStats:
    schedules: int = 0
    violations: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    # Liveness: how many were measured, and the largest share of its bound one used.
    liveness: int = 0
    worst_share: float = 0.0
    # Dual activity (measured in every mode; a violation outside cooperative mode).
    dual_schedules: int = 0
    dual_episodes: int = 0
    dual_total: float = 0.0
    dual_max: float = 0.0
    dual_by_kind: Counter[str] = field(default_factory=Counter)

    def add(self, v: Verdict) -> None:
        self.schedules += 1
        self.kinds[v.schedule.kind] += 1
        if v.violations:
            self.violations += 1
        t = v.takeover
        if t is not None and t.active is not None:
            self.liveness += 1
            self.worst_share = max(self.worst_share, t.active / t.bound)
        if v.overlaps:
            self.dual_schedules += 1
            self.dual_by_kind[v.schedule.kind] += 1
            self.dual_episodes += len(v.overlaps)
            lengths = [hi - lo for lo, hi in v.overlaps]
            self.dual_total += sum(lengths)
            self.dual_max = max(self.dual_max, *lengths)

    def merge(self, other: ModeStats) -> None:
        self.schedules += other.schedules
        self.violations += other.violations
        self.kinds.update(other.kinds)
        self.liveness += other.liveness
        self.worst_share = max(self.worst_share, other.worst_share)
        self.dual_schedules += other.dual_schedules
        self.dual_episodes += other.dual_episodes
        self.dual_total += other.dual_total
        self.dual_max = max(self.dual_max, other.dual_max)
        self.dual_by_kind.update(other.dual_by_kind)


@dataclass
class Summary:
    per_mode: dict[SafetyMode, ModeStats] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def schedules(self) -> int:
        return sum(s.schedules for s in self.per_mode.values())

    @property
    def violations(self) -> int:
        return len(self.failures)

    def add(self, v: Verdict, *, keep_trace: bool) -> None:
        s = v.schedule
        self.per_mode.setdefault(s.mode, ModeStats()).add(v)
        if v.violations:
            trace = run(s, tracing=True).trace if keep_trace else []
            self.failures.append(Failure(s.mode, s.seed, s.index, s.kind, v.violations, trace))

    def merge(self, other: Summary) -> None:
        for mode, stats in other.per_mode.items():
            self.per_mode.setdefault(mode, ModeStats()).merge(stats)
        self.failures.extend(other.failures)


def run_range(
    seed: int, modes: tuple[SafetyMode, ...], start: int, stop: int, keep_trace: bool
) -> Summary:
    summary = Summary()
    for index in range(start, stop):
        summary.add(run(generate(seed, index, mode_of(index, modes))), keep_trace=keep_trace)
    return summary


def _run_chunk(job: tuple[int, tuple[SafetyMode, ...], int, int, bool]) -> Summary:
    return run_range(*job)


def worker_pool(workers: int) -> multiprocessing.pool.Pool:
    """Forked workers (they see the tests' monkeypatches) that SIGTERM always ends.

    The pool ends its workers with SIGTERM, but a fork keeps the parent's handlers.
    Under pytest the parent may have a Python-level one from earlier tests (the
    lab's), which a worker runs only if its main thread gets back to the
    interpreter: one stuck in C (a lock some thread held at the fork) outlived the
    signal, and the pool waited for it forever (seen in CI, as a timeout in the
    cooperative schedules' test). Forked with SIGTERM at its default, the kernel
    ends a worker whatever state it is in. Call from the main thread.
    """
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        return multiprocessing.get_context("fork").Pool(workers)
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_many(
    count: int,
    seed: int,
    modes: tuple[SafetyMode, ...],
    *,
    workers: int,
    first: int = 0,
    keep_trace: bool = False,
    progress: bool = False,
) -> Summary:
    """Schedules first .. first+count-1 of `seed`, on `workers` processes."""
    began = time.monotonic()
    jobs: Iterator[tuple[int, tuple[SafetyMode, ...], int, int, bool]] = (
        (seed, modes, i, min(i + CHUNK, first + count), keep_trace)
        for i in range(first, first + count, CHUNK)
    )
    total = Summary()
    if workers <= 1:
        results: Iterator[Summary] = map(_run_chunk, jobs)
        _collect(total, results, count, began, progress)
    else:
        with worker_pool(workers) as pool:
            _collect(total, pool.imap_unordered(_run_chunk, jobs), count, began, progress)
    total.failures.sort(key=lambda f: (f.index, f.mode))
    total.seconds = time.monotonic() - began
    return total


def _collect(
    total: Summary, results: Iterator[Summary], count: int, began: float, progress: bool
) -> None:
    step = max(count // 20, CHUNK)
    shown = 0
    for part in results:
        total.merge(part)
        if progress and total.schedules - shown >= step:
            shown = total.schedules
            rate = shown / (time.monotonic() - began)
            print(
                f"  {shown}/{count} schedules, {total.violations} violations, "
                f"{rate:.0f} schedules/s",
                flush=True,
            )
