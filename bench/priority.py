"""What real-time scheduling buys the daemon on a busy host: `python -m bench.priority`.

One failoverd node on loopback (the demo's primary, alone, cooperative mode:
it becomes active), run with node.realtime_priority = 10 (the default) and
with 0 (the normal scheduler). For each, for SECONDS, busy processes keep
every core busy (--hogs-per-core, 4 by default), each in a session of its own (so
that autogroup gives each its own share, as systemd's cgroups give each
service), at nice 0 and then at nice -19. Printed per run:

- the daemon's own event-loop lag: its failoverd_event_loop_lag_seconds
  histogram (a measurement every 100 ms), counted over the load window only;
- the /health answer time seen by a prober that runs SCHED_FIFO itself, so
  that the prober is not the one waiting for a CPU.

Then the same load on a pair with the `fast` profile's timers (heartbeat
50 ms, dead_time 150 ms; cooperative mode, so that only the two nodes'
own delays count): the transitions either node made during the window,
every one of them a false failover, since both stay healthy.

Needs root (SCHED_RR for the daemon, SCHED_FIFO for the prober, nice -19).
Every hog ends by itself after SECONDS + 5 s at most, and is killed by its
PID when its window ends.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from failoverd.core.types import SafetyMode
from failoverd.demo.cluster import Cluster, Node, NodePlan, Tweak

PROBE_EVERY = 0.05
LAG = "failoverd_event_loop_lag_seconds"


FAST_PROFILE = {"heartbeat_interval": "50ms", "dead_time": "150ms", "init_dead": "1s"}
"""docs/profiles.md's `fast` timers that matter without a witness."""


@dataclass(frozen=True)
class Run:
    priority: int
    nice: int
    lag: dict[float, int]  # bucket upper bound -> measurements at or below it, in the window
    health: list[float]  # seconds per /health answer
    failed: int  # /health probes that got no 200 within 2 s


@dataclass(frozen=True)
class Pair:
    priority: int
    nice: int
    transitions: int  # by either node, during the window: all false (both stay healthy)
    lag: dict[float, int]  # the primary's


def _lag_buckets(api_url: str) -> dict[float, int]:
    with urllib.request.urlopen(f"{api_url}/metrics", timeout=5) as r:
        text = r.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == LAG:
            return {
                float(s.labels["le"]): int(s.value)
                for s in family.samples
                if s.name == f"{LAG}_bucket"
            }
    raise RuntimeError(f"{api_url}/metrics has no {LAG}")


@contextmanager
def _hogs(count: int, nice: int, seconds: float) -> Iterator[None]:
    spin = (
        f"import time\nend = time.monotonic() + {seconds + 5}\nwhile time.monotonic() < end: pass"
    )
    procs = [
        subprocess.Popen(
            ["nice", "-n", str(nice), sys.executable, "-c", spin], start_new_session=True
        )
        for _ in range(count)
    ]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait(10)


def _probe(url: str, stop: threading.Event, times: list[float], failures: list[int]) -> None:
    os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(50))
    while not stop.is_set():
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                r.read()
            times.append(time.perf_counter() - start)
        except OSError:
            failures.append(1)
        stop.wait(PROBE_EVERY)


def _measure(
    url: str, hogs: int, nice: int, seconds: float
) -> tuple[dict[float, int], list[float], int]:
    """Under load: the lag histogram's counts, the /health times and failures, from `url`."""
    times: list[float] = []
    failures: list[int] = []
    stop = threading.Event()
    prober = threading.Thread(target=_probe, args=(url, stop, times, failures))
    with _hogs(hogs, nice, seconds):
        before = _lag_buckets(url)
        prober.start()
        time.sleep(seconds)  # the measurement window itself, not a wait for a condition
        stop.set()
        prober.join()
        after = _lag_buckets(url)
    return {le: after[le] - before.get(le, 0) for le in after}, times, len(failures)


def _with_priority(priority: int, timing: dict[str, str] | None = None) -> Tweak:
    def tweak(plan: NodePlan, data: dict[str, Any]) -> None:
        data["node"]["realtime_priority"] = priority
        data["timing"].update(timing or {})

    return tweak


def _one_node(base: Path, priority: int, nice: int, seconds: float, hogs: int) -> Run:
    with Cluster(base, SafetyMode.COOPERATIVE, tweak=_with_priority(priority)) as cluster:
        node = cluster.primary
        node.daemon.start()
        node.wait_state("active", 30)
        lag, times, failed = _measure(node.plan.api_url, hogs, nice, seconds)
    return Run(priority, nice, lag, times, failed)


def _transitions(node: Node) -> int:
    return sum(1 for r in node.journal() if r["kind"] == "transition")


def _fast_pair(base: Path, priority: int, nice: int, seconds: float, hogs: int) -> Pair:
    tweak = _with_priority(priority, FAST_PROFILE)
    with Cluster(base, SafetyMode.COOPERATIVE, tweak=tweak) as cluster:
        cluster.start()
        cluster.wait_settled(cluster.primary, 30)
        before = [_transitions(n) for n in cluster.nodes]
        lag, _, _ = _measure(cluster.primary.plan.api_url, hogs, nice, seconds)
        changes = sum(_transitions(n) - b for n, b in zip(cluster.nodes, before, strict=True))
    return Pair(priority, nice, changes, lag)


def _share_over(lag: dict[float, int], bound: float) -> str:
    total = lag[float("inf")]
    at_most = max((n for le, n in lag.items() if le <= bound), default=0)
    return f"{100 * (total - at_most) / total:.1f} %" if total else "-"


def _max_bucket(lag: dict[float, int]) -> str:
    total = lag[float("inf")]
    le = min((le for le, n in lag.items() if n == total), default=float("inf"))
    return f"≤ {le * 1000:g} ms" if le != float("inf") else "> 5 s"


def _ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    if q == 1.0:
        return f"{max(values) * 1000:.1f}"
    return f"{statistics.quantiles(values, n=100)[int(q * 100) - 1] * 1000:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.priority", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="load window per run")
    parser.add_argument("--hogs-per-core", type=int, default=4, help="busy processes per core")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench.priority needs root (SCHED_RR, SCHED_FIFO, nice -19)", file=sys.stderr)
        return 2
    hogs = args.hogs_per_core * (os.cpu_count() or 1)
    runs: list[Run] = []
    pairs: list[Pair] = []
    with tempfile.TemporaryDirectory(prefix="failoverd-bench-priority-") as tmp:
        for nice in (0, -19):
            for priority in (10, 0):
                base = Path(tmp) / f"p{priority}-n{nice}"
                runs.append(_one_node(base / "node", priority, nice, args.seconds, hogs))
                pairs.append(_fast_pair(base / "pair", priority, nice, args.seconds, hogs))
    load = f"{os.cpu_count()} cores kept busy by {hogs} processes, {args.seconds:g} s per run"
    node = Table(title=f"One active node (default timers); {load}")
    for column in (
        "hogs' nice",
        "realtime_priority",
        "lag samples",
        "> 10 ms",
        "> 50 ms",
        "max lag",
        "/health p50 ms",
        "p99",
        "max",
        "no 200",
    ):
        node.add_column(column, justify="right")
    for r in runs:
        node.add_row(
            str(r.nice),
            str(r.priority),
            str(r.lag[float("inf")]),
            _share_over(r.lag, 0.01),
            _share_over(r.lag, 0.05),
            _max_bucket(r.lag),
            _ms(r.health, 0.5),
            _ms(r.health, 0.99),
            _ms(r.health, 1.0),
            str(r.failed),
        )
    pair = Table(title=f"A pair with the fast profile's timers (dead_time 150 ms); {load}")
    for column in ("hogs' nice", "realtime_priority", "role changes", "> 50 ms", "max lag"):
        pair.add_column(column, justify="right")
    for q in pairs:
        pair.add_row(
            str(q.nice),
            str(q.priority),
            str(q.transitions),
            _share_over(q.lag, 0.05),
            _max_bucket(q.lag),
        )
    console = Console(width=120)
    console.print(node)
    console.print(pair)
    return 0


if __name__ == "__main__":
    sys.exit(main())
