"""The ledger adds up runs of disjoint ranges, and only runs of the same code."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sim.ledger import (
    FINGERPRINTED,
    ROOT,
    Entry,
    LedgerError,
    append,
    fingerprint,
    missing,
    read,
    summary,
)


def _copy_fingerprinted(to: Path) -> None:
    for entry in FINGERPRINTED:
        src, dst = ROOT / entry, to / entry
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)


def test_the_fingerprint_changes_with_the_core_and_the_simulator(tmp_path: Path) -> None:
    _copy_fingerprinted(tmp_path)
    first = fingerprint(tmp_path)
    assert first == fingerprint(ROOT)
    for edited in ("src/failoverd/core/node.py", "tests/sim/cluster.py"):
        path = tmp_path / edited
        before = path.read_text()
        path.write_text(before + "\n# edited\n")
        assert fingerprint(tmp_path) != first, edited
        path.write_text(before)
    assert fingerprint(tmp_path) == first


def _entry(first: int, count: int, *, code: str = "c1", violations: int = 0) -> Entry:
    return Entry.now(
        seed=1, mode="witness", first=first, count=count, violations=violations, code=code,
        seconds=1800.0,
    )  # fmt: skip


def test_ranges_of_the_same_code_add_up_and_overlaps_count_once(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    for e in (_entry(0, 100), _entry(100, 50), _entry(120, 100), _entry(500, 10)):
        append(path, e)
    append(path, _entry(0, 1000, code="c2", violations=2))
    lines = summary(read(path))
    assert lines == [
        "witness seed 1 code c1: 230 distinct schedules (0..219, 500..509), "
        "0 violations; runs: 4, 2.00 h",
        "witness seed 1 code c2: 1000 distinct schedules (0..999), 2 violations; runs: 1, 0.50 h",
    ]


def test_a_damaged_ledger_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    append(path, _entry(0, 10))
    with path.open("a") as f:
        f.write(json.dumps({"seed": 1}) + "\n")
    with pytest.raises(LedgerError, match=r"ledger.jsonl:2: not a ledger entry"):
        read(path)


def _sim(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "tests.sim", "--seed", "3", "--mode", "fence", *args]
    return subprocess.run(argv, check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_a_run_appends_its_range_and_code(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    done = _sim("--schedules", "6", "--first", "40", "--workers", "1", "--ledger", str(path))
    assert done.returncode == 0, done.stderr
    (entry,) = read(path)
    assert (entry.seed, entry.mode, entry.first, entry.count) == (3, "fence", 40, 6)
    assert entry.code == fingerprint() and entry.violations == 0
    assert f"code {entry.code}" in done.stdout
    shown = _sim("--ledger-summary", str(path))
    assert "fence seed 3 code" in shown.stdout and "6 distinct schedules (40..45)" in shown.stdout


def test_missing_is_what_runs_of_the_same_seed_mode_and_code_left_out() -> None:
    runs = [_entry(0, 5), _entry(8, 2), _entry(3, 1), _entry(5, 3, code="c2")]
    runs += [Entry.now(seed=2, mode="witness", first=5, count=3, violations=0, code="c1",
                       seconds=1.0)]  # fmt: skip
    assert missing(runs, seed=1, mode="witness", code="c1", upto=12) == [(5, 8), (10, 12)]
    assert missing(runs, seed=1, mode="fence", code="c1", upto=4) == [(0, 4)]
    assert missing(runs, seed=1, mode="witness", code="c1", upto=4) == []
    assert missing([_entry(20, 5)], seed=1, mode="witness", code="c1", upto=12) == [(0, 12)]


def test_fill_runs_only_what_the_ledger_lacks_then_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    code = fingerprint()
    for first, count, of in ((0, 5, code), (5, 3, "other code")):
        append(path, Entry.now(seed=3, mode="fence", first=first, count=count, violations=0,
                               code=of, seconds=1.0))  # fmt: skip
    fill = ("--fill", "12", "--schedules", "3", "--workers", "1", "--ledger", str(path))
    done = _sim(*fill)
    assert done.returncode == 0, done.stderr
    added = [(e.first, e.count, e.code) for e in read(path)[2:]]
    assert added == [(5, 3, code), (8, 3, code), (11, 1, code)]
    assert f"fence seed 3 code {code}: 12 distinct schedules (0..11)" in done.stdout
    again = _sim(*fill)
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout and len(read(path)) == 5


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--fill", "10"), "--fill needs --ledger FILE"),
        (("--fill", "10", "--first", "4", "--ledger", "x.jsonl"), "leave out --first"),
        (("--fill", "0", "--ledger", "x.jsonl"), "--fill must be at least 1"),
    ],
)
def test_fill_refuses_what_it_cannot_do(args: tuple[str, ...], said: str) -> None:
    done = _sim(*args)
    assert done.returncode == 2 and said in done.stderr.strip().splitlines()[-1]
