"""The script runner against real /bin/sh processes."""

import asyncio
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from failoverd.config.schema import Script
from failoverd.core.types import ScriptPhase
from failoverd.scripts import (
    PhaseResult,
    ScriptRunner,
    ScriptRunnerBusyError,
    kill_leftover,
    process_start_time,
)

LOGGER = "test.failoverd.scripts"
HELD_OPEN = "still holds its output open"


def pid_running(pid: int) -> bool:
    """True while `pid` is a live process (a zombie is dead, merely not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


async def async_wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.01)


def read_pid(path: Path) -> int:
    assert wait_until(lambda: path.exists() and path.read_text().endswith("\n"))
    return int(path.read_text())


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A working dir with the seed's layout: ./scripts/step.sh appends its argument to order.txt."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    step = scripts / "step.sh"
    step.write_text('#!/bin/sh\necho "$1" >> order.txt\necho "step $1 in $(pwd)"\n')
    step.chmod(0o755)
    return tmp_path


@pytest.fixture
def spawned() -> Iterator[list[int]]:
    """PIDs of long-lived processes a test started; killed at the end whatever happens."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if pid_running(pid):
            os.kill(pid, signal.SIGKILL)


def make_runner(workdir: Path, **limits: Any) -> ScriptRunner:
    return ScriptRunner(workdir, logging.getLogger(LOGGER), **limits)


def run(
    runner: ScriptRunner,
    phase: ScriptPhase,
    commands: Sequence[str],
    timeout: float = 30.0,
    extra_env: dict[str, str] | None = None,
) -> PhaseResult:
    scripts = [Script(c, timeout) for c in commands]
    return asyncio.run(runner.run_phase(phase, scripts, extra_env or {}))


def order(workdir: Path) -> list[str]:
    path = workdir / "order.txt"
    return path.read_text().split() if path.exists() else []


def test_scripts_run_in_order_relative_to_working_dir(workdir: Path) -> None:
    result = run(
        make_runner(workdir), ScriptPhase.STARTUP, [f"./scripts/step.sh {i}" for i in "123"]
    )

    assert result.ok
    assert result.detail == "all 3 startup scripts succeeded"
    assert order(workdir) == ["1", "2", "3"]
    assert [r.exit_code for r in result.results] == [0, 0, 0]
    assert result.results[0].output == (f"step 1 in {workdir}",)


def test_environment_is_base_plus_failoverd_variables(workdir: Path) -> None:
    runner = ScriptRunner(
        workdir, logging.getLogger(LOGGER), env={"PATH": os.environ["PATH"], "BASE": "kept"}
    )
    extra = {
        "FAILOVERD_NODE": "alpha",
        "FAILOVERD_PEER": "beta",
        "FAILOVERD_EPOCH": "7",
        "FAILOVERD_REASON": "peer silent for 1.0s",
        "FAILOVERD_PHASE": "wrong",
    }
    command = (
        'echo "$BASE|$FAILOVERD_PHASE|$FAILOVERD_NODE|$FAILOVERD_PEER|'
        '$FAILOVERD_EPOCH|$FAILOVERD_REASON|${HOME-unset}"'
    )

    result = run(runner, ScriptPhase.SHUTDOWN, [command], extra_env=extra)

    assert result.results[0].output == ("kept|shutdown|alpha|beta|7|peer silent for 1.0s|unset",)


def test_default_environment_is_the_daemons(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAILOVERD_TEST_INHERITED", "from-daemon")

    result = run(make_runner(workdir), ScriptPhase.STARTUP, ['echo "$FAILOVERD_TEST_INHERITED"'])

    assert result.results[0].output == ("from-daemon",)


def test_stdin_is_dev_null(workdir: Path) -> None:
    result = run(make_runner(workdir), ScriptPhase.STARTUP, ["cat; echo eof"])

    assert result.ok
    assert result.results[0].output == ("eof",)


def test_seed_redirections_keep_working(workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    command = "./scripts/step.sh 1 >foo.log 2>foo.err; echo oops >&2 2>>foo.err"

    result = run(make_runner(workdir), ScriptPhase.SHUTDOWN, [command])

    assert result.ok
    assert (workdir / "foo.log").read_text() == f"step 1 in {workdir}\n"
    assert "step 1" not in caplog.text


def test_startup_stops_at_first_failure(workdir: Path) -> None:
    commands = ["./scripts/step.sh 1", "./scripts/step.sh 2; exit 3", "./scripts/step.sh 3"]

    result = run(make_runner(workdir), ScriptPhase.STARTUP, commands)

    assert not result.ok
    assert order(workdir) == ["1", "2"]
    assert len(result.results) == 2
    assert result.detail == (
        "startup script 2/3 ./scripts/step.sh 2; exit 3 failed with exit code 3; "
        "the other 1 not run"
    )


@pytest.mark.parametrize("phase", [ScriptPhase.SHUTDOWN, ScriptPhase.DEMOTE])
def test_a_stop_runs_every_script_and_fails_if_any_failed(
    workdir: Path, phase: ScriptPhase
) -> None:
    commands = ["./scripts/step.sh 1; exit 1", "./scripts/step.sh 2", "exit 4"]

    result = run(make_runner(workdir), phase, commands)

    assert not result.ok
    assert order(workdir) == ["1", "2"]
    assert [r.exit_code for r in result.results] == [1, 0, 4]
    assert result.detail == (
        f"2 of 3 {phase} scripts failed: {phase} script 1/3 ./scripts/step.sh 1; exit 1 "
        f"failed with exit code 1; {phase} script 3/3 exit 4 failed with exit code 4"
    )


def test_fence_stops_at_first_success(workdir: Path) -> None:
    commands = ["./scripts/step.sh 1; exit 1", "./scripts/step.sh 2", "./scripts/step.sh 3"]

    result = run(make_runner(workdir), ScriptPhase.FENCE, commands)

    assert result.ok
    assert order(workdir) == ["1", "2"]
    assert result.detail == "fence script 2/3 ./scripts/step.sh 2 succeeded"


def test_fence_fails_when_no_level_succeeds(workdir: Path) -> None:
    result = run(make_runner(workdir), ScriptPhase.FENCE, ["exit 1", "exit 2"])

    assert not result.ok
    assert len(result.results) == 2
    assert result.detail == (
        "no fence script succeeded (fence script 1/2 exit 1 failed with exit code 1; "
        "fence script 2/2 exit 2 failed with exit code 2)"
    )


@pytest.mark.parametrize("phase", [ScriptPhase.STARTUP, ScriptPhase.SHUTDOWN, ScriptPhase.DEMOTE])
def test_empty_phase_succeeds(workdir: Path, phase: ScriptPhase) -> None:
    result = run(make_runner(workdir), phase, [])

    assert result.ok
    assert result.results == ()
    assert result.detail == f"all 0 {phase} scripts succeeded"


def test_empty_fence_phase_fails(workdir: Path) -> None:
    # Nothing fenced the peer, so nothing may be started on the strength of it.
    result = run(make_runner(workdir), ScriptPhase.FENCE, [])

    assert not result.ok
    assert result.detail == "no fence script configured"


def test_killed_by_signal_is_named(workdir: Path) -> None:
    result = run(make_runner(workdir), ScriptPhase.STARTUP, ["kill -KILL $$"])

    assert result.results[0].exit_code == -signal.SIGKILL
    assert result.detail == "startup script 1/1 kill -KILL $$ was killed by SIGKILL"


def test_script_that_cannot_start_fails_the_phase(tmp_path: Path) -> None:
    result = run(make_runner(tmp_path / "missing"), ScriptPhase.STARTUP, ["true"])

    assert not result.ok
    assert result.results[0].exit_code is None
    assert result.results[0].error is not None
    assert result.detail.startswith("startup script 1/1 true could not be started (")


def test_timeout_kills_the_whole_group_including_a_daemonised_grandchild(
    workdir: Path, spawned: list[int]
) -> None:
    # The grandchild ignores SIGTERM (so only SIGKILL ends it) and is orphaned
    # by a subshell (daemonised), but stays in the script's process group.
    command = (
        "(sh -c 'trap \"\" TERM; echo $$ > grandchild.pid; exec sleep 300' &); "
        "trap '' TERM; sleep 300"
    )

    result = run(make_runner(workdir), ScriptPhase.SHUTDOWN, [command, "./scripts/step.sh 2"], 0.5)

    grandchild = read_pid(workdir / "grandchild.pid")
    spawned.append(grandchild)
    first = result.results[0]
    assert first.timed_out
    assert first.exit_code == -signal.SIGKILL
    assert wait_until(lambda: not pid_running(grandchild))
    assert order(workdir) == ["2"]
    assert result.detail.startswith(
        f"1 of 2 shutdown scripts failed: shutdown script 1/2 {command}"
    )
    assert result.detail.endswith("timed out after 0.5s (killed)")


def test_timeout_of_a_script_honouring_sigterm(workdir: Path) -> None:
    result = run(make_runner(workdir), ScriptPhase.STARTUP, ["sleep 300"], 0.5)

    assert result.results[0].timed_out
    assert result.results[0].exit_code == -signal.SIGTERM
    assert result.detail == "startup script 1/1 sleep 300 timed out after 0.5s (killed)"


def test_output_is_logged_while_the_script_runs(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    release = workdir / "release"
    command = "echo first; echo problem >&2; while [ ! -e release ]; do sleep 0.02; done; echo last"

    async def scenario() -> PhaseResult:
        runner = make_runner(workdir)
        task = asyncio.create_task(runner.run_phase(ScriptPhase.STARTUP, [Script(command, 30)], {}))
        await async_wait_until(lambda: "problem" in caplog.text and "first" in caplog.text)
        assert not task.done()
        release.touch()
        return await task

    result = asyncio.run(scenario())

    assert result.ok
    label = f"script[startup 1/1 {command[:80]}]"
    logged = [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if " out: " in r.getMessage() or " err: " in r.getMessage()
    ]
    assert (logging.INFO, f"{label} out: first") in logged
    assert (logging.WARNING, f"{label} err: problem") in logged
    assert (logging.INFO, f"{label} out: last") in logged
    assert result.results[0].output == ("first", "problem", "last")


def test_huge_output_is_bounded_but_fully_read(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    runner = make_runner(workdir, log_lines=50, tail_lines=3, max_line=100)
    # Lines on both streams, then an 8 MB line: a runner that stopped reading
    # would leave the script blocked on a full pipe until its timeout.
    command = (
        "seq 1 100000 >&2; seq 1 200000; head -c 8000000 /dev/zero | tr '\\0' x; echo; echo end"
    )

    result = run(runner, ScriptPhase.STARTUP, [command], timeout=60)

    assert result.ok
    assert result.results[0].output == ("200000", "x" * 100 + " [line cut]", "end")
    line_records = [
        r for r in caplog.records if " out: " in r.getMessage() or " err: " in r.getMessage()
    ]
    assert len(line_records) == 50
    assert all(len(r.getMessage()) < 400 for r in caplog.records)
    assert "300002 lines of output, 299952 not logged" in caplog.text


def test_long_line_is_cut(workdir: Path) -> None:
    runner = make_runner(workdir, max_line=10)

    result = run(runner, ScriptPhase.STARTUP, ["printf '%s\\n' 0123456789abcdef short"])

    assert result.results[0].output == ("0123456789 [line cut]", "short")


def test_cancel_kills_the_running_script_and_aborts_the_phase(
    workdir: Path, spawned: list[int]
) -> None:
    pidfile = workdir / "main.pid"
    commands = ["echo $$ > main.pid; sleep 300", "./scripts/step.sh 2"]

    async def scenario() -> PhaseResult:
        runner = make_runner(workdir)
        task = asyncio.create_task(
            runner.run_phase(ScriptPhase.STARTUP, [Script(c, 60) for c in commands], {})
        )
        await async_wait_until(lambda: pidfile.exists() and pidfile.read_text().endswith("\n"))
        spawned.append(int(pidfile.read_text()))
        runner.cancel()
        return await task

    result = asyncio.run(scenario())

    assert not result.ok
    assert result.detail == "aborted"
    assert len(result.results) == 1
    assert not pid_running(spawned[0])
    assert order(workdir) == []


def test_cancel_without_a_phase_does_not_affect_the_next(workdir: Path) -> None:
    runner = make_runner(workdir)
    runner.cancel()

    assert run(runner, ScriptPhase.STARTUP, ["true"]).ok


def test_one_phase_at_a_time(workdir: Path) -> None:
    async def scenario() -> None:
        runner = make_runner(workdir)
        first = asyncio.create_task(
            runner.run_phase(ScriptPhase.STARTUP, [Script("sleep 300", 60)], {})
        )
        await asyncio.sleep(0)
        with pytest.raises(ScriptRunnerBusyError):
            await runner.run_phase(ScriptPhase.SHUTDOWN, [], {})
        runner.cancel()
        assert (await first).detail == "aborted"

    asyncio.run(scenario())


def test_detached_service_survives_and_the_script_returns_at_once(
    workdir: Path, spawned: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    # A drain period longer than the test's timeout: only EOF on both pipes can end the run.
    runner = make_runner(workdir, drain_time=3600)
    command = "setsid sh -c 'echo $$ > service.pid; exec sleep 300' >/dev/null 2>&1 & echo started"

    result = run(runner, ScriptPhase.STARTUP, [command])

    service = read_pid(workdir / "service.pid")
    spawned.append(service)
    assert result.ok
    assert result.results[0].output == ("started",)
    assert pid_running(service)
    assert os.getsid(service) == service
    assert HELD_OPEN not in caplog.text


def test_background_child_holding_the_pipes_is_left_alone(
    workdir: Path, spawned: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    runner = make_runner(workdir, drain_time=0.2)
    command = "sh -c 'echo $$ > child.pid; exec sleep 300' & echo started"

    result = run(runner, ScriptPhase.STARTUP, [command, "./scripts/step.sh 2"])

    child = read_pid(workdir / "child.pid")
    spawned.append(child)
    assert result.ok
    assert order(workdir) == ["2"]
    assert pid_running(child)
    assert HELD_OPEN in caplog.text


# -- leftovers of a crashed daemon ---------------------------------------------------


def test_the_ledger_names_the_running_script_and_is_removed_after(tmp_path: Path) -> None:
    ledger = tmp_path / "running-script.json"
    runner = ScriptRunner(tmp_path, logging.getLogger("test"), ledger=ledger)
    seen: list[dict[str, Any]] = []

    async def watch() -> PhaseResult:
        task = asyncio.create_task(
            runner.run_phase(ScriptPhase.STARTUP, [Script("sleep 0.5", 10.0)], {})
        )
        deadline = time.monotonic() + 10
        while not ledger.exists():
            assert time.monotonic() < deadline, "the ledger was never written"
            await asyncio.sleep(0.01)
        seen.append(json.loads(ledger.read_text()))
        return await task

    assert asyncio.run(watch()).ok
    [record] = seen
    assert record["command"] == "sleep 0.5" and record["start"] is not None
    assert not ledger.exists()


def test_a_script_left_running_by_a_crashed_daemon_is_killed_by_its_successor(
    tmp_path: Path,
) -> None:
    """As a SIGKILLed daemon leaves it: a startup script in its own session, and the ledger."""
    ledger = tmp_path / "running-script.json"
    marker = tmp_path / "service-started"
    proc = subprocess.Popen(["/bin/sh", "-c", f"sleep 2; touch {marker}"], start_new_session=True)
    ledger.write_text(
        json.dumps({"pgid": proc.pid, "start": process_start_time(proc.pid), "command": "start"})
    )
    assert kill_leftover(ledger, logging.getLogger("test")) == proc.pid
    assert proc.wait(timeout=5) == -signal.SIGKILL
    assert not ledger.exists()
    time.sleep(2.5)  # past the moment the leftover would have started the service
    assert not marker.exists()


def test_a_reused_pid_in_the_ledger_is_left_alone(tmp_path: Path) -> None:
    ledger = tmp_path / "running-script.json"
    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        ledger.write_text(json.dumps({"pgid": proc.pid, "start": 1, "command": "x"}))
        assert kill_leftover(ledger, logging.getLogger("test")) is None
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_an_unreadable_ledger_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = tmp_path / "running-script.json"
    ledger.write_text("{not json")
    assert kill_leftover(ledger, logging.getLogger("test")) is None
    assert "ignoring unreadable script ledger" in caplog.text
    assert not ledger.exists()
