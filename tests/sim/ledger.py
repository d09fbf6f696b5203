"""Which schedules have run on which code: the evidence for runs too long for one sitting.

A million schedules take more machine time than one working session. Each run
of `python -m tests.sim --ledger FILE` appends one JSON line: the seed, the
mode, the index range, the violations, and a fingerprint of the code that
decided the verdicts. Ranges with the same seed, mode and fingerprint add up
to one run over their union; `--ledger-summary FILE` prints that union.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import platform
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Everything a verdict depends on: the core, the replay window of the simulated
# wire, and the simulator's network, schedules and invariants (not its reporting).
FINGERPRINTED = (
    "src/failoverd/core",
    "src/failoverd/replay.py",
    "tests/sim/cluster.py",
    "tests/sim/schedule.py",
    "tests/sim/check.py",
)


def fingerprint(root: Path = ROOT) -> str:
    digest = hashlib.sha256()
    for entry in FINGERPRINTED:
        path = root / entry
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(f.relative_to(root).as_posix().encode() + b"\0")
            digest.update(f.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


class LedgerError(Exception):
    """A ledger line that cannot be read: the file and line say where."""


@dataclass(frozen=True)
class Entry:
    seed: int
    mode: str  # one mode, or "all" (index i then has mode MODES[i % 3])
    first: int
    count: int
    violations: int
    code: str
    seconds: float
    python: str
    finished: str

    @classmethod
    def now(
        cls, *, seed: int, mode: str, first: int, count: int, violations: int, code: str,
        seconds: float,
    ) -> Entry:  # fmt: skip
        return cls(
            seed=seed,
            mode=mode,
            first=first,
            count=count,
            violations=violations,
            code=code,
            seconds=round(seconds, 1),
            python=platform.python_version(),
            finished=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        )


def append(path: Path, entry: Entry) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(asdict(entry), sort_keys=True) + "\n")


def read(path: Path) -> list[Entry]:
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entries.append(Entry(**json.loads(line)))
        except (ValueError, TypeError) as e:
            raise LedgerError(f"{path}:{number}: not a ledger entry ({e})") from e
    return entries


def _union(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Half-open [lo, hi) ranges merged where they overlap or touch."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def missing(
    entries: Iterable[Entry], *, seed: int, mode: str, code: str, upto: int
) -> list[tuple[int, int]]:
    """The half-open ranges of schedules 0..upto-1 that no run of this seed, mode and
    code has covered yet, in order: what is left of a long run."""
    covered = _union(
        (e.first, e.first + e.count)
        for e in entries
        if (e.seed, e.mode, e.code) == (seed, mode, code)
    )
    gaps, at = [], 0
    for lo, hi in covered:
        if lo > at:
            gaps.append((at, min(lo, upto)))
        at = max(at, hi)
        if at >= upto:
            break
    if at < upto:
        gaps.append((at, upto))
    return [(lo, hi) for lo, hi in gaps if lo < hi]


def summary(entries: list[Entry]) -> list[str]:
    """One line per (mode, seed, code): the distinct schedules run, as ranges."""
    groups: dict[tuple[str, int, str], list[Entry]] = {}
    for e in entries:
        groups.setdefault((e.mode, e.seed, e.code), []).append(e)
    lines = []
    for (mode, seed, code), group in sorted(groups.items()):
        spans = _union((e.first, e.first + e.count) for e in group)
        distinct = sum(hi - lo for lo, hi in spans)
        shown = ", ".join(f"{lo}..{hi - 1}" for lo, hi in spans)
        violations = sum(e.violations for e in group)
        hours = sum(e.seconds for e in group) / 3600
        lines.append(
            f"{mode} seed {seed} code {code}: {distinct} distinct schedules ({shown}), "
            f"{violations} violations; runs: {len(group)}, {hours:.2f} h"
        )
    return lines
