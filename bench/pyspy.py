"""Where a daemon's CPU goes: py-spy samples of its Python stacks, summarised by function.

`python -m bench --py-spy` records each failoverd process for a while after
its footprint window (not during it: the measured figures stay py-spy-free).
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RATE = 500  # samples per second
# A sample whose innermost frame is one of these waits: the thread was idle.
IDLE_LEAVES = ("select (", "wait (", "_worker (", "get (queue", "sleep (")
# Frames every busy sample has: the interpreter's and the event loop's own.
FRAME_NOISE = frozenset(
    {
        "<module>", "main", "Command.__call__", "Command.main", "Group.invoke",
        "Command.invoke", "Context.invoke", "run", "_serve", "Runner.run",
        "BaseEventLoop.run_until_complete", "BaseEventLoop.run_forever",
        "BaseEventLoop._run_once", "Handle._run", "Thread._bootstrap",
        "Thread._bootstrap_inner", "Thread.run",
    }
)  # fmt: skip


def executable() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def record(pids: Mapping[str, int], seconds: float, out: Path) -> dict[str, Path]:
    """Sample every process at once for `seconds`; raw (collapsed) stacks per process."""
    spy = executable()
    if spy is None:
        raise FileNotFoundError("py-spy is not installed (pip install py-spy)")
    out.mkdir(parents=True, exist_ok=True)
    files = {name: out / (re.sub(r"[^\w-]+", "_", name).strip("_") + ".txt") for name in pids}
    procs = []
    for name, pid in pids.items():
        argv = [
            spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
            "--rate", str(RATE), "--nonblocking", "--format", "raw", "--output", str(files[name]),
        ]  # fmt: skip
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for proc in procs:
        try:
            proc.wait(seconds + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {name: path for name, path in files.items() if path.exists()}


def summarize(path: Path, cpu_percent: float, top: int = 12) -> dict[str, Any]:
    """The functions busy samples pass through, as a share of the busy samples and, scaled
    by the CPU measured over the footprint window, as % of a core (inclusive)."""
    busy = 0
    idle = 0
    inclusive: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if any(leaf in frames[-1] for leaf in IDLE_LEAVES):
            idle += n
            continue
        busy += n
        for name in {frame.split(" (")[0] for frame in frames} - FRAME_NOISE:
            inclusive[name] += n
    rows = []
    for name, n in inclusive.most_common(top) if busy else []:
        share = n / busy
        rows.append(
            {
                "function": name,
                "share": round(share, 3),
                "cpu_percent": round(cpu_percent * share, 3),
            }
        )
    return {"busy_samples": busy, "idle_samples": idle, "top": rows}
