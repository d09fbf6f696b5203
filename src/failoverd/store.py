"""What a node keeps on disk: its persisted state, its boot counter and its event journal.

state_dir/state.json holds the epoch: a node that forgot it could take over
with an epoch its peer already used, so every write is atomic and durable
(temporary file in the same directory, fsync, rename, fsync of the directory)
and a file that cannot be read is an error, never "no state".
"""

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from failoverd.core.records import Decision, PersistedState
from failoverd.core.types import NodeState

STATE_FILE = "state.json"
BOOT_FILE = "boot"
JOURNAL_FILE = "journal.jsonl"
STATE_VERSION = 1
JOURNAL_MAX_BYTES = 10 * 1024 * 1024


class StoreError(Exception):
    """Something under state_dir cannot be read or written."""


class StateError(StoreError):
    """The persisted state or boot counter is unreadable, corrupt or cannot be written."""


class JournalError(StoreError):
    """The event journal cannot be written."""


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new content."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _state_to_json(state: PersistedState) -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "epoch": state.epoch,
        "state": state.state.value,
        "maintenance": state.maintenance,
        "released_epoch": state.released_epoch,
        "last_transition": state.last_transition,
    }


def _field(data: Mapping[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    # bool is an int subclass: an epoch of `true` is corruption, not 1.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{name!r} missing or of the wrong type (expected {kind.__name__})")
    return value


def _state_from_json(data: object) -> PersistedState:
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("version") != STATE_VERSION:
        raise ValueError(f"unknown version {data.get('version')!r} (expected {STATE_VERSION})")
    epoch = _field(data, "epoch", int)
    released = _field(data, "released_epoch", int)
    if epoch < 0 or released < 0:
        raise ValueError("negative epoch")
    return PersistedState(
        epoch=epoch,
        state=NodeState(_field(data, "state", str)),
        maintenance=_field(data, "maintenance", bool),
        released_epoch=released,
        last_transition=_field(data, "last_transition", str),
    )


class StateStore:
    """state_dir/state.json (PersistedState) and state_dir/boot (the boot counter).

    Creates state_dir, mode 0700, if it does not exist.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.state_path = state_dir / STATE_FILE
        self.boot_path = state_dir / BOOT_FILE
        if state_dir.is_dir():
            return
        try:
            state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            _fsync_dir(state_dir.parent)
        except OSError as e:
            raise StateError(
                f"cannot create state directory {state_dir}: {e.strerror}; "
                "create it for the daemon's user (mode 0700) or set node.state_dir"
            ) from e

    def load(self) -> PersistedState | None:
        """The saved state, or None if this node never saved one."""
        try:
            data = self.state_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StateError(
                f"cannot read state file {self.state_path}: {e}; let the daemon's user read and "
                "write it (it holds this node's epoch, which must not be lost)"
            ) from e
        try:
            return _state_from_json(json.loads(data))
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise StateError(
                f"corrupt state file {self.state_path}: {e}; restore it from a backup, or move "
                "it aside once `failoverd status` shows the peer's epoch (this node then starts "
                "from epoch 0 and learns the current one from its peer)"
            ) from e

    def save(self, state: PersistedState) -> None:
        """Write the state atomically and durably: on return it survives a power cut."""
        data = json.dumps(_state_to_json(state), indent=2).encode() + b"\n"
        try:
            _write_atomic(self.state_path, data)
        except OSError as e:
            raise StateError(f"cannot write state file {self.state_path}: {e}") from e

    def next_boot(self) -> int:
        """Count this start: 1 on a node's first start, one more on each after.

        The wire layer sends it with every message; receivers refuse messages
        from an older boot (replay protection), so it must never go back.
        """
        try:
            data = self.boot_path.read_bytes()
        except FileNotFoundError:
            data = b"0"
        except OSError as e:
            raise StateError(f"cannot read boot counter {self.boot_path}: {e}") from e
        if not re.fullmatch(rb"[0-9]+\s*", data):
            raise StateError(
                f"corrupt boot counter {self.boot_path}: {data[:40]!r}; write into it a number "
                "above any boot this node had, e.g. the output of `date +%s`"
            )
        boot = int(data) + 1
        try:
            _write_atomic(self.boot_path, f"{boot}\n".encode())
        except OSError as e:
            raise StateError(f"cannot write boot counter {self.boot_path}: {e}") from e
        return boot


@dataclass(frozen=True, slots=True)
class JournalContents:
    """What `Journal.scan` found: the records, oldest first, and the lines it had to skip.

    corrupt: lines that are not a JSON object (in the middle of the file).
    torn: the last line was cut short (a crash during an append); not counted as corrupt.
    """

    records: list[dict[str, Any]]
    corrupt: int
    torn: bool


class Journal:
    """JSON-lines event journal: one record per line, each append flushed and fsynced.

    When an append would take the file past `max_bytes`, the file becomes
    `<path>.1` (replacing the previous one) and a new file is started.
    """

    def __init__(self, path: Path, max_bytes: int = JOURNAL_MAX_BYTES) -> None:
        self.path = path
        self.rotated_path = path.with_name(path.name + ".1")
        self.max_bytes = max_bytes

    def append(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        try:
            self._rotate_before(len(line))
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                size = os.fstat(fd).st_size
                # After a torn append, end that line first or this record joins it.
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line
                rest = memoryview(line)
                while rest:
                    rest = rest[os.write(fd, rest) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            if not size:  # a new file (first append, or after rotation): make its name durable
                _fsync_dir(self.path.parent)
        except OSError as e:
            raise JournalError(f"cannot append to journal {self.path}: {e}") from e

    def _rotate_before(self, incoming: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size and size + incoming > self.max_bytes:
            os.replace(self.path, self.rotated_path)  # made durable with the new file's name

    def scan(self, limit: int | None = None) -> JournalContents:
        """The newest `limit` records (all if None), oldest first, reading `<path>.1` if needed."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be at least 0, not {limit}")
        current = _parse_lines(self.path)
        records, corrupt = current.records, current.corrupt
        if limit is None or len(records) < limit:
            older = _parse_lines(self.rotated_path)
            records = older.records + records
            corrupt += older.corrupt + older.torn  # a torn line there lies mid-history
        if limit is not None:
            records = records[max(0, len(records) - limit) :]
        return JournalContents(records, corrupt, current.torn)

    def read(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The newest `limit` records (all if None), oldest first; see `scan` for skipped lines."""
        return self.scan(limit).records


def _parse_lines(path: Path) -> JournalContents:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return JournalContents([], 0, False)
    lines = data.split(b"\n")
    # A complete file ends with a newline, leaving an empty last piece.
    last = lines.pop()
    records: list[dict[str, Any]] = []
    corrupt = 0
    for line in lines:
        record = _parse_line(line)
        if record is not None:
            records.append(record)
        elif line.strip():
            corrupt += 1
    torn = False
    if last:
        record = _parse_line(last)
        if record is None:
            torn = True
        else:
            records.append(record)
    return JournalContents(records, corrupt, torn)


def _parse_line(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def decision_record(d: Decision, wall_time: float) -> dict[str, Any]:
    """The journal's form of a Decision: wall time (ISO 8601 UTC) beside the node's own clock."""
    stamp = datetime.fromtimestamp(wall_time, tz=UTC).isoformat(timespec="milliseconds")
    return {
        "time": stamp.replace("+00:00", "Z"),
        "clock": d.at,
        "node": d.node,
        "kind": d.kind,
        "reason": d.reason,
        "epoch": d.epoch,
        "from": None if d.from_state is None else d.from_state.value,
        "to": None if d.to_state is None else d.to_state.value,
        "details": dict(d.details),
    }
