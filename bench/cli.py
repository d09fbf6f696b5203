"""`python -m bench`: run the bench, print the tables, write RESULTS.md and results.json."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import failoverd
from bench import anatomy, fd, ka, pyspy, report
from bench.common import Cluster
from bench.procstat import loadavg
from bench.runner import CLIENT_INTERVAL, CLIENT_TIMEOUT, CLIENTS, FAULTS, Runner, running
from failoverd import __version__
from failoverd.lab.netns import LabError, LabUnavailable, Topology, run_command

LAB_PREFIX = "fbench"
RUNS = (
    "failoverd:default",
    "failoverd:demote",  # the default profile with a demote (kill) script
    "failoverd:fast",
    "keepalived:default",
    "keepalived:fast",
    "failoverd:cooperative",  # an extra: trials only
)
CHECKS = "checks"
LB_1S = "lb-1s"  # the default profile's footprint with HAProxy checking /health every 1 s
EXTRAS = (CHECKS, LB_1S)
HERE = Path(__file__).resolve().parent
SMOKE_OUT = Path("/tmp/failoverd-bench-smoke")
GRACE = 5.0  # after a loss or SIGSTOP run, for decisions taken during it to show
SMOKE_GRACE = 1.0


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Failover time, false failovers and footprint of failoverd (default, "
        "default with a demote script, and fast profiles) beside keepalived (advert_int 1 and "
        "0.01), in the network-namespace lab. Needs root.",
    )
    p.add_argument("--smoke", action="store_true", help="a few trials and short runs")
    p.add_argument("--trials", type=int, help="failover trials per fault (default 20; smoke 2)")
    p.add_argument(
        "--loss-seconds", type=float, help="length of each loss run (default 600; smoke 10)"
    )
    p.add_argument("--sigstop-runs", type=int, help="SIGSTOP runs (default 3; smoke 1)")
    p.add_argument("--sigstop-seconds", type=float, default=5.0, help="(default 5)")
    p.add_argument(
        "--footprint-seconds", type=float, help="idle measuring window (default 60; smoke 5)"
    )
    p.add_argument("--checks", type=int, default=100, help="checks of the footprint run")
    p.add_argument(
        "--py-spy",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="after each footprint window, sample the failoverd processes with py-spy "
        "for SECONDS and report where their CPU goes (pip install py-spy)",
    )
    p.add_argument(
        "--only",
        help=f"comma-separated subset of {', '.join((*RUNS, *EXTRAS))} (default: all)",
    )
    p.add_argument(
        "--keep-logs",
        action="store_true",
        help="copy every run's logs to OUT/logs (always done for a run with errors)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help=f"where RESULTS.md and results.json go (default {HERE}; smoke {SMOKE_OUT})",
    )
    args = p.parse_args(argv)
    smoke = args.smoke
    for name, full, small in (
        ("trials", 20, 2),
        ("loss_seconds", 600.0, 10.0),
        ("sigstop_runs", 3, 1),
        ("footprint_seconds", 60.0, 5.0),
    ):
        if getattr(args, name) is None:
            setattr(args, name, small if smoke else full)
    if args.out is None:
        args.out = SMOKE_OUT if smoke else HERE
    args.grace = SMOKE_GRACE if smoke else GRACE
    if args.py_spy and pyspy.executable() is None:
        p.error("--py-spy needs py-spy (pip install py-spy; it is in the dev extras)")
    selected = args.only.split(",") if args.only else [*RUNS, *EXTRAS]
    unknown = [s for s in selected if s not in (*RUNS, *EXTRAS)]
    if unknown:
        p.error(f"--only: unknown {', '.join(unknown)}; choose from {', '.join((*RUNS, *EXTRAS))}")
    args.selected = selected
    if args.trials < 0 or args.loss_seconds < 0 or args.sigstop_runs < 0:
        p.error("counts and durations must not be negative")
    if not 0 < args.footprint_seconds <= 3600 or args.loss_seconds > 24 * 3600:
        p.error("--footprint-seconds must be in (0, 3600] and --loss-seconds at most a day")
    return args


# -- machine and versions ---------------------------------------------------------------------


def _first_line(argv: Sequence[str]) -> str:
    try:
        done = run_command(argv, check=False)
    except LabError as e:
        return f"unavailable ({e})"
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    os_name = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "os": os_name,
        "loadavg_start": loadavg(),
    }


def failoverd_source() -> str:
    """Which failoverd the bench (and the daemons it starts) import, and at what commit."""
    src = Path(failoverd.__file__).resolve().parent.parent
    stamp = src / "COMMIT"  # written beside an exported tree: git archive ... && echo HASH >COMMIT
    if stamp.is_file():
        return f"{stamp.read_text().strip()} (exported to {src})"
    commit = _first_line(["git", "-C", str(src), "rev-parse", "--short", "HEAD"])
    dirty = run_command(["git", "-C", str(src), "status", "--porcelain", "--", "."], check=False)
    changed = len(dirty.stdout.splitlines())
    return f"{commit}" + (f" + {changed} uncommitted files under {src}" if changed else "")


def versions() -> dict[str, str]:
    return {
        "failoverd": f"{__version__}, git {failoverd_source()}",
        "python": platform.python_version(),
        "keepalived": _first_line(["keepalived", "--version"]),
        "haproxy": _first_line(["haproxy", "-v"]),
        "dovecot": _first_line(["dovecot", "--version"]),
        "iptables": _first_line(["iptables", "--version"]),
    }


# -- the runs ------------------------------------------------------------------------------------


def make_cluster(name: str, lab: Topology, checks: int = 0) -> Cluster:
    system, profile = name.split(":")
    if system == "failoverd":
        return fd.FailoverdCluster(lab, fd.PROFILES[profile], checks=checks)
    return ka.KeepalivedCluster(lab, ka.PROFILES[profile])


# A run that fails for any reason is logged and reported, and the bench goes on with the
# next one: an hour-long run must not be lost to one section's surprise.
def _section(run: dict[str, Any], key: str, fn: Callable[[], Any], into: str = "") -> None:
    """run[into][key] = fn() (or run[key]); a failure is logged and kept in run["errors"]."""
    try:
        (run[into] if into else run)[key] = fn()
    except Exception as e:
        log(f"  {run['system']} {run['profile']} {key} failed: {e!r}")
        run.setdefault("errors", []).append(f"{key}: {e!r}")


def measure_run(name: str, args: argparse.Namespace) -> dict[str, Any]:
    system, profile = name.split(":")
    run: dict[str, Any] = {"system": system, "profile": profile, "settings": {}}
    log(f"{system} {profile}: starting")
    try:
        with Topology(prefix=LAB_PREFIX) as lab:
            cluster = make_cluster(name, lab)
            try:
                with running(cluster):
                    _measure(run, cluster, Runner(cluster, lab, log), args)
            except Exception as e:
                log(f"{system} {profile}: failed: {e!r}")
                run.setdefault("errors", []).append(repr(e))
            if run.get("errors") or args.keep_logs:
                keep_logs(cluster, lab, args.out / "logs" / f"{system}-{profile}")
    except Exception as e:
        log(f"{system} {profile}: lab failed: {e!r}")
        run.setdefault("errors", []).append(repr(e))
    return run


def _measure(
    run: dict[str, Any], cluster: Cluster, runner: Runner, args: argparse.Namespace
) -> None:
    """Every section of one run, in order; a failed section is recorded and skipped."""
    name = f"{cluster.system} {cluster.profile}"
    run["settings"] = cluster.settings()
    full = not cluster.trials_only
    if full:
        log(f"{name}: idle footprint over {args.footprint_seconds:g}s")
        _section(run, "footprint", lambda: runner.footprint(args.footprint_seconds, args.py_spy))
    run["failover"] = {}
    for fault in FAULTS if args.trials else ():
        log(f"{name}: {args.trials} failover trials, fault {fault}")
        _section(run, fault, _trials_of(runner, fault, args.trials), "failover")
    run["false_failovers"] = []
    if args.sigstop_runs and full:
        log(f"{name}: {args.sigstop_runs} SIGSTOP runs")
        _section(
            run,
            "_sigstop",
            lambda: runner.sigstop_runs(
                args.sigstop_runs, args.sigstop_seconds, args.grace
            ).as_dict(),
        )
    if args.loss_seconds and full:
        log(f"{name}: {cluster.loss:.0%} loss for {args.loss_seconds:g}s")
        _section(run, "_loss", lambda: runner.loss_run(args.loss_seconds, args.grace).as_dict())
    for key in ("_sigstop", "_loss"):
        if key in run:
            run["false_failovers"].append(run.pop(key))


def keep_logs(cluster: Cluster, lab: Topology, dest: Path) -> None:
    """Copy the cluster's configs, logs and journals (not Dovecot's runtime files or mail)."""
    if not cluster.dir.is_dir():
        return
    shutil.rmtree(dest, ignore_errors=True)
    ignore = shutil.ignore_patterns("run", "mail", "state", "*.sock", "*.fifo", "secret")
    shutil.copytree(cluster.dir, dest, ignore=ignore)
    for journal in cluster.dir.glob("*/state/journal.jsonl"):
        target = dest / journal.relative_to(cluster.dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(journal, target)
    if (lab.run_dir / "clients").is_dir():
        shutil.copytree(lab.run_dir / "clients", dest / "clients")
    log(f"  logs kept in {dest}")


def _trials_of(runner: Runner, fault: str, n: int) -> Callable[[], dict[str, Any]]:
    def trials() -> dict[str, Any]:
        done = runner.failover_trials(fault, n)
        summary = report.summarize([t.seconds for t in done])
        return {
            "trials": [t.as_dict() for t in done],
            "summary": None if summary is None else summary.as_dict(),
        }

    return trials


def measure_footprint(
    what: str, cluster_of: Callable[[Topology], Cluster], args: argparse.Namespace
) -> dict[str, Any] | None:
    """The footprint alone of a variant of the default profile."""
    log(f"{what}: footprint over {args.footprint_seconds:g}s")
    try:
        with Topology(prefix=LAB_PREFIX) as lab, running(cluster_of(lab)) as cluster:
            result = Runner(cluster, lab, log).footprint(args.footprint_seconds, args.py_spy)
            result["settings"] = cluster.settings()
            return result
    except Exception as e:
        log(f"{what} failed: {e!r}")
        return None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        Topology.require()
    except LabUnavailable as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    if any(s.startswith("keepalived") for s in args.selected):
        ka.ensure_installed(log)
    started = time.monotonic()
    data: dict[str, Any] = {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv),
        "smoke": args.smoke,
        "args": {
            "trials": args.trials,
            "loss_seconds": args.loss_seconds,
            "sigstop_runs": args.sigstop_runs,
            "sigstop_seconds": args.sigstop_seconds,
            "footprint_seconds": args.footprint_seconds,
            "py_spy_seconds": args.py_spy,
            "checks": args.checks,
            "only": args.selected,
        },
        "machine": machine(),
        "versions": versions(),
        "client": (
            f"{CLIENTS} POP3 probes (failoverd.lab.client_probe) in the client namespace, "
            f"each a new connection + USER/PASS/QUIT every {CLIENT_INTERVAL * 1000:.0f} ms, "
            f"staggered (one login every {CLIENT_INTERVAL / CLIENTS * 1000:.0f} ms), "
            f"timeout {CLIENT_TIMEOUT * 1000:.0f} ms"
        ),
        "runs": [],
    }
    for name in RUNS:
        if name in args.selected:
            data["runs"].append(measure_run(name, args))
    if CHECKS in args.selected:
        data["checks_count"] = args.checks
        data["checks"] = measure_footprint(
            f"failoverd default with {args.checks} tcp checks",
            lambda lab: fd.FailoverdCluster(lab, fd.DEFAULT, checks=args.checks),
            args,
        )
    if LB_1S in args.selected:
        data["lb_1s"] = measure_footprint(
            "failoverd default, HAProxy checking /health every 1 s",
            lambda lab: fd.FailoverdCluster(lab, fd.LB_1S),
            args,
        )
    try:
        data["memory_layers"] = anatomy.layers()
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        log(f"memory layers: {e}")
    data["machine"]["loadavg_end"] = loadavg()
    data["duration_s"] = round(time.monotonic() - started, 1)
    data["targets"] = [t.as_dict() for t in report.targets(data)]
    text = report.markdown(data)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    (args.out / "RESULTS.md").write_text(text)
    print(text)
    log(f"written: {args.out / 'RESULTS.md'}, {args.out / 'results.json'}")
    return 0
