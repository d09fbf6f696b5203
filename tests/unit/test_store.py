"""Persisted state, boot counter and journal, on a real file system."""

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from failoverd.core.records import Decision, PersistedState
from failoverd.core.types import NodeState
from failoverd.store import (
    Journal,
    JournalError,
    StateError,
    StateStore,
    decision_record,
)

STATE = PersistedState(
    epoch=7,
    state=NodeState.ACTIVE,
    maintenance=False,
    released_epoch=6,
    last_transition="standby: peer silent for 1.0s; taking over",
)


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records what each os.fsync call synced: "dir" or "file"."""
    calls: list[str] = []
    real = os.fsync

    def recording(fd: int) -> None:
        calls.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    return calls


def test_state_round_trip(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    assert store.load() is None

    store.save(STATE)
    assert StateStore(tmp_path).load() == STATE

    later = PersistedState(8, NodeState.RELEASING, True, 7, "released to epoch 9")
    store.save(later)
    assert StateStore(tmp_path).load() == later


def test_state_dir_is_created_private(tmp_path: Path) -> None:
    state_dir = tmp_path / "var" / "failoverd"

    StateStore(state_dir).save(STATE)

    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((state_dir / "state.json").stat().st_mode) == 0o600


def test_save_fsyncs_the_file_then_the_directory(tmp_path: Path, fsyncs: list[str]) -> None:
    store = StateStore(tmp_path)
    fsyncs.clear()

    store.save(STATE)

    assert fsyncs == ["file", "dir"]


def test_leftover_temp_file_from_a_crash_does_not_affect_load(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save(STATE)
    # A crash between writing the temporary file and renaming it.
    (tmp_path / ".state.json.k3j2l1.tmp").write_text('{"epoch": 99, "sta')

    assert StateStore(tmp_path).load() == STATE


def test_failed_save_keeps_the_old_state_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = StateStore(tmp_path)
    store.save(STATE)

    def no_rename(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(StateError, match=r"cannot write state file .*state\.json"):
        store.save(PersistedState(8, NodeState.ACTIVE, False, 7, "x"))
    monkeypatch.undo()

    assert store.load() == STATE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def valid_state_json(**changes: Any) -> bytes:
    fields = {
        "version": 1,
        "epoch": 7,
        "state": "active",
        "maintenance": False,
        "released_epoch": 6,
        "last_transition": "x",
    }
    return json.dumps({**fields, **changes}).encode()


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "Expecting value"),
        (b'{"version": 1, "epoch": 7', "Expecting"),
        (b'{"epoch": "\xff"}', "can't decode"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"version": 2}', "unknown version 2"),
        (valid_state_json(epoch="7"), "'epoch' missing or of the wrong type (expected int)"),
    ],
)
def test_corrupt_state_file_is_an_error_naming_file_and_fix(
    tmp_path: Path, content: bytes, why: str
) -> None:
    (tmp_path / "state.json").write_bytes(content)

    with pytest.raises(StateError) as err:
        StateStore(tmp_path).load()

    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"corrupt state file {tmp_path / 'state.json'}: ")
    assert why in message
    assert "restore it from a backup" in message


@pytest.mark.parametrize(
    "changes",
    [{"epoch": True}, {"epoch": -1}, {"state": "leader"}, {"maintenance": 0}, {"epoch": None}],
)
def test_wrong_values_in_state_file_are_corruption(tmp_path: Path, changes: dict[str, Any]) -> None:
    (tmp_path / "state.json").write_bytes(valid_state_json(**changes))

    with pytest.raises(StateError, match="corrupt state file"):
        StateStore(tmp_path).load()


def test_unreadable_state_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "state.json").mkdir()

    with pytest.raises(
        StateError, match=r"cannot read state file .*state\.json: .*must not be lost"
    ):
        StateStore(tmp_path).load()


def test_boot_counter_increments_across_instances(tmp_path: Path, fsyncs: list[str]) -> None:
    assert StateStore(tmp_path).next_boot() == 1
    assert fsyncs[-2:] == ["file", "dir"]
    assert StateStore(tmp_path).next_boot() == 2
    store = StateStore(tmp_path)
    assert store.next_boot() == 3
    assert store.next_boot() == 4
    assert (tmp_path / "boot").read_text() == "4\n"


def test_boot_counter_continues_from_an_operators_value(tmp_path: Path) -> None:
    (tmp_path / "boot").write_text("1700000000")

    assert StateStore(tmp_path).next_boot() == 1700000001


@pytest.mark.parametrize("content", [b"", b"abc", b"-3", b"\xb2"])
def test_corrupt_boot_counter_is_an_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "boot").write_bytes(content)

    with pytest.raises(StateError, match=r"corrupt boot counter .*boot: .*date \+%s"):
        StateStore(tmp_path).next_boot()
    assert (tmp_path / "boot").read_bytes() == content


def test_journal_append_and_read_newest_last(tmp_path: Path, fsyncs: list[str]) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    assert journal.read() == []

    for i in range(5):
        journal.append({"n": i, "reason": "línea\nnueva"})

    assert "file" in fsyncs
    assert [r["n"] for r in journal.read()] == [0, 1, 2, 3, 4]
    assert [r["n"] for r in journal.read(limit=2)] == [3, 4]
    assert journal.read(limit=0) == []
    assert journal.read()[0]["reason"] == "línea\nnueva"
    assert len((tmp_path / "journal.jsonl").read_text().splitlines()) == 5


def test_each_append_is_durable_before_it_returns(tmp_path: Path, fsyncs: list[str]) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append({"n": 0})
    fsyncs.clear()

    journal.append({"n": 1})

    assert fsyncs == ["file"]


def test_torn_last_line_is_skipped_and_the_next_append_is_intact(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.append({"n": 0})
    with path.open("ab") as f:
        f.write(b'{"n": 1, "reas')  # the crash

    contents = journal.scan()
    assert contents.records == [{"n": 0}]
    assert contents.torn
    assert contents.corrupt == 0

    journal.append({"n": 2})

    contents = journal.scan()
    assert contents.records == [{"n": 0}, {"n": 2}]
    assert contents.corrupt == 1
    assert not contents.torn


def test_corrupt_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"n": 0}\nnot json\n[1, 2]\n\xff\n{"n": 1}\n')

    contents = Journal(path).scan()

    assert contents.records == [{"n": 0}, {"n": 1}]
    assert contents.corrupt == 3
    assert not contents.torn


def test_rotation_keeps_one_old_file(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path, max_bytes=100)
    record_size = len(b'{"n":00,"pad":"xxxxxxxxxx"}\n')

    for i in range(10, 30):
        journal.append({"n": i, "pad": "x" * 10})

    assert path.stat().st_size <= 100
    assert (tmp_path / "journal.jsonl.1").stat().st_size <= 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.jsonl", "journal.jsonl.1"]
    kept = [r["n"] for r in journal.read()]
    per_file = 100 // record_size
    assert kept == list(range(30 - len(kept), 30))
    assert per_file < len(kept) <= 2 * per_file
    assert [r["n"] for r in journal.read(limit=per_file + 1)] == list(range(29 - per_file, 30))


def test_record_larger_than_the_limit_is_still_written(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl", max_bytes=10)

    journal.append({"reason": "a long reason"})
    journal.append({"reason": "another one"})

    assert [r["reason"] for r in journal.read()] == ["a long reason", "another one"]


def test_negative_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="limit"):
        Journal(tmp_path / "journal.jsonl").read(limit=-1)


def test_append_failure_is_a_journal_error(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "missing" / "journal.jsonl")

    with pytest.raises(JournalError, match=r"cannot append to journal .*journal\.jsonl"):
        journal.append({"n": 0})


def test_decision_record(tmp_path: Path) -> None:
    decision = Decision(
        at=1234.5,
        node="alpha",
        kind="transition",
        reason="standby: primary's pop3 check failed 3 times; sending SHUTDOWN_YOUR_SERVICE",
        epoch=3,
        from_state=NodeState.STANDBY,
        to_state=NodeState.TAKING_OVER,
        details=(("check", "pop3"), ("failures", "3")),
    )
    wall = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC).timestamp()

    record = decision_record(decision, wall)

    assert record == {
        "time": "2026-01-02T03:04:05.678Z",
        "clock": 1234.5,
        "node": "alpha",
        "kind": "transition",
        "reason": decision.reason,
        "epoch": 3,
        "from": "standby",
        "to": "taking_over",
        "details": {"check": "pop3", "failures": "3"},
    }
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append(record)
    assert journal.read() == [record]


def test_decision_record_without_transition() -> None:
    record = decision_record(Decision(at=1.0, node="a", kind="hold", reason="r", epoch=0), 0.0)

    assert record["from"] is None
    assert record["to"] is None
    assert record["details"] == {}
    assert record["time"] == "1970-01-01T00:00:00.000Z"
