"""The client log's analysis, on hand-made attempts (no root needed)."""

import json
from pathlib import Path

import pytest

from failoverd.lab.client import Attempt, ClientLog
from failoverd.lab.client_probe import node_in_banner
from failoverd.lab.netns import LabError


def log_of(pattern: str, step: float = 0.1, elapsed: float = 0.01) -> ClientLog:
    """One attempt per character, `step` apart: P/S = answered by primary/standby, x = error."""
    nodes = {"P": "primary", "S": "standby"}
    return ClientLog(
        Attempt(
            seq=i,
            start=100 + i * step,
            wall=0.0,
            elapsed=elapsed,
            ok=c != "x",
            node=nodes.get(c),
            error="ConnectionRefusedError: refused" if c == "x" else None,
            banner=None,
        )
        for i, c in enumerate(pattern)
    )


def test_failover_timings() -> None:
    log = log_of("PPPxxxSSS")  # attempts at 100.0, 100.1, ... 100.8
    first = log.first_answer(100.25, "standby")
    assert first is not None and first.seq == 6
    assert log.time_to_answer(100.25, "standby") == pytest.approx(0.36)
    assert log.time_to_answer(100.25) == pytest.approx(0.36)
    assert log.time_to_answer(100.25, "primary") is None
    last = log.last_answer("primary")
    assert last is not None and last.seq == 2
    assert log.answers_by_node() == {"primary": 3, "standby": 3}


def test_error_periods_are_maximal_runs_of_failures() -> None:
    periods = log_of("PxxPxS").error_periods()
    assert [(p.count, round(p.start, 2), round(p.end, 2)) for p in periods] == [
        (2, 100.1, 100.21),
        (1, 100.4, 100.41),
    ]
    assert periods[0].errors == ("ConnectionRefusedError: refused",)
    assert log_of("PPSS").error_periods() == []


def test_runs_and_interleavings() -> None:
    assert [(r.node, r.count) for r in log_of("PPxPSSP").runs()] == [
        ("primary", 3),
        ("standby", 2),
        ("primary", 1),
    ]
    assert log_of("PPPSSS").interleavings(within=1.0) == []
    (x, y, z), *_ = log_of("PPSPP").interleavings(within=1.0)  # spread over both nodes
    assert (x.node, y.node, z.node) == ("primary", "standby", "primary")
    # A failback after a long standby period is not an interleaving.
    assert log_of("PP" + "S" * 30 + "PP").interleavings(within=1.0) == []


def test_between_selects_by_start() -> None:
    assert [a.seq for a in log_of("PPPPP").between(100.15, 100.35)] == [2, 3]


def test_load_skips_only_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "client.jsonl"
    record = {
        "seq": 0,
        "start": 1.0,
        "wall": 2.0,
        "elapsed": 0.1,
        "ok": True,
        "node": "primary",
        "error": None,
        "banner": "+OK primary",
    }
    path.write_text(json.dumps(record) + '\n{"seq": 1, "sta')
    assert [a.node for a in ClientLog.load(path)] == ["primary"]
    path.write_text('{"seq": 1, "sta\n' + json.dumps(record) + "\n")
    with pytest.raises(LabError, match=r"client\.jsonl:1:"):
        ClientLog.load(path)
    assert len(ClientLog.load(tmp_path / "missing.jsonl")) == 0


def test_node_is_found_as_a_word_in_the_banner() -> None:
    nodes = ["primary", "standby"]
    assert node_in_banner("+OK failoverd node standby ready.", nodes) == "standby"
    assert node_in_banner("+OK primary-2 ready.", nodes) is None
    assert node_in_banner("+OK Dovecot (Debian) ready.", nodes) is None
