"""CPU and memory of processes, from /proc: what a daemon costs while it idles."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_EVERY = 1.0


@dataclass(frozen=True, slots=True)
class CpuTimes:
    own: float  # seconds of user + system time of the process
    children: float  # of its children it has waited for (exec checks, scripts)


def cpu_times(pid: int) -> CpuTimes:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # After the ")": state is fields[0], so stat's field n (1-based) is fields[n - 3].
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return CpuTimes((utime + stime) / TICKS, (cutime + cstime) / TICKS)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # without guest time, which is counted in user already
    return total - idle, total


@dataclass(frozen=True, slots=True)
class Usage:
    """One process over a window: CPU as % of one core, RSS at the end and at most."""

    cpu_percent: float
    children_cpu_percent: float
    rss_mb: float
    max_rss_mb: float
    seconds: float

    def as_dict(self) -> dict[str, float]:
        return {
            "cpu_percent": round(self.cpu_percent, 3),
            "children_cpu_percent": round(self.children_cpu_percent, 3),
            "rss_mb": round(self.rss_mb, 2),
            "max_rss_mb": round(self.max_rss_mb, 2),
            "seconds": round(self.seconds, 1),
        }


@dataclass(frozen=True, slots=True)
class Window:
    usage: dict[str, Usage]
    machine_cpu_percent: float  # of all cores together, 100 = every core busy
    loadavg: tuple[float, float, float]


def loadavg() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


def measure(pids: Mapping[str, int], seconds: float) -> Window:
    """Sample the processes for `seconds`; a process that exits ends its own window."""
    start = time.monotonic()
    first = {name: cpu_times(pid) for name, pid in pids.items()}
    busy0, total0 = machine_busy()
    peak = {name: rss_bytes(pid) for name, pid in pids.items()}
    last = dict(first)
    ended: dict[str, float] = {}
    while (left := start + seconds - time.monotonic()) > 0:
        time.sleep(min(SAMPLE_EVERY, left))
        for name, pid in pids.items():
            if name in ended:
                continue
            try:
                last[name] = cpu_times(pid)
                peak[name] = max(peak[name], rss_bytes(pid))
            except OSError:
                ended[name] = time.monotonic()
    now = time.monotonic()
    busy1, total1 = machine_busy()
    usage = {}
    for name, pid in pids.items():
        span = ended.get(name, now) - start
        try:
            rss = rss_bytes(pid)
        except OSError:
            rss = 0
        usage[name] = Usage(
            cpu_percent=100 * (last[name].own - first[name].own) / span,
            children_cpu_percent=100 * (last[name].children - first[name].children) / span,
            rss_mb=rss / 2**20,
            max_rss_mb=peak[name] / 2**20,
            seconds=span,
        )
    machine = 100 * (busy1 - busy0) / max(1, total1 - total0)
    return Window(usage, machine, loadavg())
