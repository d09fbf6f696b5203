"""Running the startup, shutdown, demote and fence scripts (the seed's STARTUP/SHUTDOWN_SCRIPTS).

Each script runs as `/bin/sh -c COMMAND` in the scripts' working directory, in a
process group of its own, with stdin from /dev/null and the FAILOVERD_* variables
added to the daemon's environment. Its output goes to the log line by line while
it runs. On timeout its whole process group is terminated, then killed.

A script that starts a long-lived service must detach it from the script: start
it in a session of its own (`setsid`, or the service's own daemon mode) with its
output redirected away from the script's (`>/var/log/foo.log 2>&1`). The runner
waits only for the script's main process; once that has exited it reads what is
left of the output for a short drain period and then stops reading, without
touching whatever the script left running. A background child left in the
script's process group is still killed if the script itself times out.
"""

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from failoverd.config.schema import Script
from failoverd.core.types import ScriptPhase

ABORTED = "aborted"

_LABEL_CHARS = 80


class ScriptRunnerBusyError(RuntimeError):
    """run_phase was called while the same runner was still running a phase."""


@dataclass(frozen=True, slots=True)
class ScriptResult:
    """How one script ended.

    exit_code: the script's exit status; negative for a signal (-9: SIGKILL);
    None when it could not be started at all (then `error` says why).
    output: its last lines of output, stdout and stderr in arrival order.
    """

    command: str
    timeout: float
    exit_code: int | None
    timed_out: bool
    duration: float
    output: tuple[str, ...]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass(frozen=True, slots=True)
class PhaseResult:
    """How a phase ended: `detail` is a plain sentence for the log, journal and alerts."""

    phase: ScriptPhase
    ok: bool
    results: tuple[ScriptResult, ...]
    detail: str


class _Output:
    """Bounded record of a script's output: logs a capped number of lines, keeps the last few.

    Lines longer than `max_line` bytes are cut; the rest of such a line is read
    and discarded, so memory stays bounded however much the script prints.
    """

    def __init__(
        self, log: logging.Logger, label: str, log_lines: int, tail_lines: int, max_line: int
    ) -> None:
        self._log = log
        self._label = label
        self._log_lines = log_lines
        self._max_line = max_line
        self.tail: deque[str] = deque(maxlen=tail_lines)
        self.lines = 0

    def line(self, stream: str, text: str) -> None:
        self.lines += 1
        self.tail.append(text)
        if self.lines <= self._log_lines:
            level = logging.INFO if stream == "out" else logging.WARNING
            self._log.log(level, "%s %s: %s", self._label, stream, text)
        elif self.lines == self._log_lines + 1:
            self._log.warning(
                "%s: more than %d lines of output; not logging the rest",
                self._label,
                self._log_lines,
            )

    def splitter(self, stream: str) -> "_LineSplitter":
        return _LineSplitter(lambda text: self.line(stream, text), self._max_line)

    def finish(self) -> None:
        if self.lines > self._log_lines:
            self._log.warning(
                "%s: %d lines of output, %d not logged; last lines: %s",
                self._label,
                self.lines,
                self.lines - self._log_lines,
                " | ".join(self.tail),
            )


class _LineSplitter:
    """Cuts a byte stream into lines, holding at most `max_line` bytes of an unfinished line."""

    def __init__(self, emit: Callable[[str], None], max_line: int) -> None:
        self._emit = emit
        self._max = max_line
        self._buf = bytearray()
        self._cut = False

    def feed(self, data: bytes) -> None:
        *complete, rest = data.split(b"\n")
        for piece in complete:
            self._add(piece)
            self._end_line()
        self._add(rest)

    def close(self) -> None:
        if self._buf or self._cut:
            self._end_line()

    def _add(self, piece: bytes) -> None:
        room = self._max - len(self._buf)
        if len(piece) > room:
            self._cut = True
        if room > 0:
            self._buf += piece[:room]

    def _end_line(self) -> None:
        text = self._buf.decode(errors="replace").rstrip("\r")
        if self._cut:
            text += " [line cut]"
        self._buf.clear()
        self._cut = False
        self._emit(text)


class _PipeReader(asyncio.Protocol):
    """Feeds one output pipe into a line splitter; `done` resolves at EOF or when closed."""

    def __init__(self, splitter: _LineSplitter, done: "asyncio.Future[None]") -> None:
        self._splitter = splitter
        self._done = done

    def data_received(self, data: bytes) -> None:
        self._splitter.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._splitter.close()
        if not self._done.done():
            self._done.set_result(None)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is already gone
        os.killpg(pgid, sig)


def _describe_exit(result: ScriptResult) -> str:
    if result.error is not None:
        return f"could not be started ({result.error})"
    if result.timed_out:
        return f"timed out after {result.timeout:.1f}s (killed)"
    code = result.exit_code
    assert code is not None
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"failed with exit code {code}"


def process_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a reused PID apart)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[19])


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of the process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def kill_leftover(ledger: Path, log: logging.Logger, timeout: float = 5.0) -> int | None:
    """Kill the script group a crashed predecessor left running; its pgid, or None.

    Only a group whose leader is the very process recorded (same start time) is
    killed, so a reused PID is never touched.
    """
    try:
        record = json.loads(ledger.read_text())
        pgid, start, command = int(record["pgid"]), record["start"], str(record["command"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("ignoring unreadable script ledger %s: %s", ledger, e)
        ledger.unlink(missing_ok=True)
        return None
    ledger.unlink(missing_ok=True)
    if start is None or process_start_time(pgid) != start:
        return None  # gone (or its PID reused): nothing of ours runs
    log.warning(
        "a script left running by the previous daemon is still running (process group %d: %s): "
        "killing it before anything else",
        pgid,
        command,
    )
    _signal_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while _group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return pgid


class ScriptRunner:
    """Runs one phase's scripts at a time; see the module docstring for what a script may rely on.

    env: the environment the scripts start from (default: the daemon's own).
    drain_time: how long output is still read after a script's main process
    exited (background children may hold its pipes open).
    ledger: a file naming the running script's process group while it runs, so
    that a daemon restarted after a crash can kill what its predecessor left
    running (`kill_leftover`): scripts run in sessions of their own and outlive
    a SIGKILLed daemon, and a late startup script must not start the service
    behind the restarted daemon's back.
    log_lines: lines of output logged per script; tail_lines: lines kept in
    its ScriptResult; max_line: bytes kept of one line.
    """

    def __init__(
        self,
        working_dir: Path,
        log: logging.Logger,
        env: Mapping[str, str] | None = None,
        *,
        drain_time: float = 1.0,
        log_lines: int = 1000,
        tail_lines: int = 20,
        max_line: int = 4096,
        ledger: Path | None = None,
    ) -> None:
        self._working_dir = working_dir
        self._ledger = ledger
        self._log = log
        self._env = env
        self._drain_time = drain_time
        self._log_lines = log_lines
        self._tail_lines = tail_lines
        self._max_line = max_line
        self._running = False
        self._cancelled = False
        self._pgid: int | None = None

    def _record(self, pgid: int, command: str) -> None:
        if self._ledger is None:
            return
        start = process_start_time(pgid)
        tmp = self._ledger.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pgid": pgid, "start": start, "command": command}))
        os.replace(tmp, self._ledger)

    def cancel(self) -> None:
        """Abort the phase in progress: kill the running script's process group at once.

        run_phase then returns ok=False with detail "aborted" and runs no
        further script. Without a phase in progress this does nothing.
        """
        if not self._running:
            return
        self._cancelled = True
        if self._pgid is not None:
            self._log.warning("aborting the running script: killing process group %d", self._pgid)
            _signal_group(self._pgid, signal.SIGKILL)

    async def run_phase(
        self, phase: ScriptPhase, scripts: Sequence[Script], extra_env: Mapping[str, str]
    ) -> PhaseResult:
        """Run a phase's scripts in order.

        startup: stops at the first failure. shutdown and demote: run every
        script (best effort to stop everything), fail if any failed. fence: tries the
        scripts in order until one succeeds (fencing levels), fails if none did.
        extra_env (FAILOVERD_NODE, FAILOVERD_PEER, FAILOVERD_EPOCH,
        FAILOVERD_REASON) is added to the environment; FAILOVERD_PHASE is set
        from `phase`.
        """
        if self._running:
            raise ScriptRunnerBusyError(f"cannot run {phase} scripts: another phase is running")
        self._running = True
        self._cancelled = False
        try:
            return await self._run_phase(phase, scripts, extra_env)
        finally:
            self._running = False

    async def _run_phase(
        self, phase: ScriptPhase, scripts: Sequence[Script], extra_env: Mapping[str, str]
    ) -> PhaseResult:
        env = {
            **(os.environ if self._env is None else self._env),
            **extra_env,
            "FAILOVERD_PHASE": phase.value,
        }
        results: list[ScriptResult] = []
        failures: list[str] = []
        total = len(scripts)
        for index, script in enumerate(scripts, 1):
            name = f"{phase} script {index}/{total} {script.command}"
            label = f"script[{phase} {index}/{total} {script.command[:_LABEL_CHARS]}]"
            result = await self._run_one(script, label, env)
            results.append(result)
            if self._cancelled:
                return PhaseResult(phase, False, tuple(results), ABORTED)
            if result.ok:
                if phase is ScriptPhase.FENCE:
                    return PhaseResult(phase, True, tuple(results), f"{name} succeeded")
                continue
            failures.append(f"{name} {_describe_exit(result)}")
            if phase is ScriptPhase.STARTUP:
                detail = failures[0]
                if index < total:
                    detail += f"; the other {total - index} not run"
                return PhaseResult(phase, False, tuple(results), detail)
        if phase is ScriptPhase.FENCE:
            detail = (
                f"no fence script succeeded ({'; '.join(failures)})"
                if failures
                else "no fence script configured"
            )
            return PhaseResult(phase, False, tuple(results), detail)
        if failures:
            detail = f"{len(failures)} of {total} {phase} scripts failed: {'; '.join(failures)}"
            return PhaseResult(phase, False, tuple(results), detail)
        return PhaseResult(phase, True, tuple(results), f"all {total} {phase} scripts succeeded")

    async def _run_one(self, script: Script, label: str, env: Mapping[str, str]) -> ScriptResult:
        loop = asyncio.get_running_loop()
        output = _Output(self._log, label, self._log_lines, self._tail_lines, self._max_line)
        started = loop.time()
        readers: list[tuple[asyncio.ReadTransport, asyncio.Future[None]]] = []
        write_ends: list[int] = []
        proc: asyncio.subprocess.Process | None = None
        timed_out = False
        try:
            # Our own pipes rather than asyncio's: Process.wait() would otherwise
            # also wait for them to close, i.e. for every background child.
            for stream in ("out", "err"):
                r, w = os.pipe()
                write_ends.append(w)
                done: asyncio.Future[None] = loop.create_future()
                transport, _ = await loop.connect_read_pipe(
                    partial(_PipeReader, output.splitter(stream), done),
                    os.fdopen(r, "rb", buffering=0),
                )
                readers.append((transport, done))
            self._log.info("%s starting (timeout %.1fs)", label, script.timeout)
            try:
                proc = await asyncio.create_subprocess_exec(
                    "/bin/sh",
                    "-c",
                    script.command,
                    cwd=self._working_dir,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=write_ends[0],
                    stderr=write_ends[1],
                    start_new_session=True,
                )
            except OSError as e:
                self._log.error("%s could not be started: %s", label, e)
                return ScriptResult(script.command, script.timeout, None, False, 0.0, (), str(e))
            finally:
                for w in write_ends:
                    os.close(w)
                write_ends.clear()
            self._pgid = proc.pid
            self._record(proc.pid, script.command)
            if self._cancelled:  # cancel() came while the process was being created
                _signal_group(proc.pid, signal.SIGKILL)
            try:
                await asyncio.wait_for(proc.wait(), script.timeout)
            except TimeoutError:
                timed_out = True
                await self._terminate(proc, label, script.timeout)
            await self._drain([done for _, done in readers], label)
        finally:
            self._pgid = None
            if self._ledger is not None:
                self._ledger.unlink(missing_ok=True)
            for w in write_ends:
                os.close(w)
            if proc is not None and proc.returncode is None:  # we were cancelled ourselves
                _signal_group(proc.pid, signal.SIGKILL)
            for transport, _ in readers:
                transport.close()
        output.finish()
        result = ScriptResult(
            script.command,
            script.timeout,
            proc.returncode,
            timed_out,
            loop.time() - started,
            tuple(output.tail),
        )
        level = logging.INFO if result.ok else logging.ERROR
        self._log.log(level, "%s %s", label, "succeeded" if result.ok else _describe_exit(result))
        return result

    async def _terminate(
        self, proc: asyncio.subprocess.Process, label: str, timeout: float
    ) -> None:
        """SIGTERM to the script's whole group, SIGKILL after a grace period, then reap."""
        grace = min(2.0, timeout / 2)
        self._log.error(
            "%s timed out after %.1fs: terminating process group %d", label, timeout, proc.pid
        )
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            self._log.error("%s ignored SIGTERM for %.1fs: killing", label, grace)
        # Also after a clean exit on SIGTERM: children that outlived it die too.
        _signal_group(proc.pid, signal.SIGKILL)
        await proc.wait()

    async def _drain(self, pipes_closed: list["asyncio.Future[None]"], label: str) -> None:
        """Read the rest of the output, but only for drain_time once the main process is gone."""
        _, still_open = await asyncio.wait(pipes_closed, timeout=self._drain_time)
        if still_open:
            self._log.warning(
                "%s exited but something it started still holds its output open; no longer "
                "reading it (detach services with setsid and redirect their output)",
                label,
            )
