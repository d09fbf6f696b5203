"""`python -m tests.sim`: run seeded fault schedules through the real core.

    python -m tests.sim --schedules N --seed S --mode witness|fence|cooperative|all
                        [--workers K] [--first I] [--trace-failures] [--progress]
                        [--ledger FILE]
    python -m tests.sim --schedules PIECE --seed S --mode M --fill N --ledger FILE
                                 (run what FILE lacks of schedules 0..N-1 on this code)
    python -m tests.sim --seed S --mode M --replay INDEX     (one schedule, its trace)
    python -m tests.sim --ledger-summary FILE           (what a ledger's runs cover)

Prints one line per mode (schedule kinds, violations, the worst liveness
measured against its bound, the dual-active figures), the failing schedules
with the command that replays each, then `N schedules, V violations`. Exits 1
on any violation.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from failoverd.core.types import SafetyMode
from tests.sim import ledger
from tests.sim.check import run
from tests.sim.runner import ModeStats, Summary, run_many
from tests.sim.schedule import MODES, generate


def _modes(text: str) -> tuple[SafetyMode, ...]:
    return MODES if text == "all" else (SafetyMode(text),)


def _describe(mode: SafetyMode, s: ModeStats) -> list[str]:
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(s.kinds.items()))
    lines = [f"{mode}: {s.schedules} schedules ({kinds}), {s.violations} violations"]
    if s.liveness:
        lines.append(
            f"  liveness: {s.liveness} takeovers measured, the slowest took "
            f"{s.worst_share:.0%} of its worst-case bound"
        )
    if mode is SafetyMode.COOPERATIVE or s.dual_schedules:
        share = s.dual_schedules / s.schedules if s.schedules else 0.0
        mean = s.dual_total / s.dual_episodes if s.dual_episodes else 0.0
        by_kind = ", ".join(f"{k} {n}" for k, n in sorted(s.dual_by_kind.items()))
        lines.append(
            f"  both active at once: in {s.dual_schedules} of {s.schedules} schedules "
            f"({share:.2%}; {by_kind or 'none'}), {s.dual_episodes} episodes, "
            f"{s.dual_total:.1f}s in all, mean {mean:.2f}s, longest {s.dual_max:.2f}s"
        )
    return lines


def report(summary: Summary, *, traces: bool, code: str) -> str:
    lines: list[str] = []
    for mode in MODES:
        if mode in summary.per_mode:
            lines += _describe(mode, summary.per_mode[mode])
    for f in summary.failures:
        lines.append(f"VIOLATION {f.mode} seed {f.seed} index {f.index} ({f.kind}):")
        lines += [f"  {v}" for v in f.violations]
        lines.append(f"  replay: {f.replay_command()}")
        if traces:
            lines += [f"    {line}" for line in f.trace]
    rate = summary.schedules / summary.seconds if summary.seconds else 0.0
    lines.append(f"({summary.seconds:.1f}s, {rate:.0f} schedules/s, code {code})")
    lines.append(f"{summary.schedules} schedules, {summary.violations} violations")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.sim", description=__doc__.split("\n")[0])
    ap.add_argument("--schedules", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mode", choices=[*map(str, MODES), "all"], default="all")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--first", type=int, default=0, help="index of the first schedule")
    ap.add_argument("--trace-failures", action="store_true", help="print each failure's trace")
    ap.add_argument("--progress", action="store_true", help="print progress lines")
    ap.add_argument("--replay", type=int, metavar="INDEX", help="run one schedule, print its trace")
    ap.add_argument("--ledger", type=Path, help="append this run (range, code, verdict) to FILE")
    ap.add_argument(
        "--fill",
        type=int,
        metavar="N",
        help="with --ledger: run, in pieces of --schedules, what FILE lacks of schedules "
        "0..N-1 for this seed, mode and code (resumable; stops at the first violation)",
    )
    ap.add_argument(
        "--ledger-summary",
        type=Path,
        metavar="FILE",
        help="print the distinct schedules a ledger covers, per mode, seed and code; run nothing",
    )
    args = ap.parse_args(argv)
    if args.ledger_summary is not None:
        try:
            print("\n".join(ledger.summary(ledger.read(args.ledger_summary))) or "empty ledger")
        except (OSError, ledger.LedgerError) as e:
            ap.error(f"--ledger-summary: {e}")
        return 0
    if args.schedules < 1 or args.first < 0 or (args.fill is not None and args.fill < 1):
        ap.error("--schedules and --fill must be at least 1, and --first at least 0")
    code = ledger.fingerprint()  # before the run: the code it imported
    modes = _modes(args.mode)
    if args.replay is not None:
        if len(modes) != 1:
            ap.error("--replay needs one --mode (the mode the failure was reported with)")
        verdict = run(generate(args.seed, args.replay, modes[0]), tracing=True)
        print("\n".join(verdict.trace))
        print("\n".join(verdict.violations) or "no violation")
        return 1 if verdict.violations else 0
    if args.fill is not None:
        return _fill(ap, args, modes, code)
    return 1 if _run_piece(args, modes, args.first, args.schedules, code) else 0


def _run_piece(
    args: argparse.Namespace, modes: tuple[SafetyMode, ...], first: int, count: int, code: str
) -> int:
    """Run schedules first..first+count-1, print the report, append it to the ledger
    if there is one; return the number of violations."""
    summary = run_many(
        count,
        args.seed,
        modes,
        workers=args.workers,
        first=first,
        keep_trace=args.trace_failures,
        progress=args.progress,
    )
    print(f"seed {args.seed}, schedules {first}..{first + count - 1}, mode {args.mode}")
    print(report(summary, traces=args.trace_failures, code=code), flush=True)
    if args.ledger is not None:
        entry = ledger.Entry.now(
            seed=args.seed,
            mode=args.mode,
            first=first,
            count=summary.schedules,
            violations=summary.violations,
            code=code,
            seconds=summary.seconds,
        )
        ledger.append(args.ledger, entry)
    return summary.violations


def _fill(
    ap: argparse.ArgumentParser,
    args: argparse.Namespace,
    modes: tuple[SafetyMode, ...],
    code: str,
) -> int:
    """Run, in pieces of --schedules, what the ledger lacks of schedules 0..fill-1 for
    this seed, mode and code. Each piece is appended as it ends, so an interrupted
    fill loses at most one piece, and the same command goes on from there. Stops at
    the first piece with a violation."""
    if args.ledger is None:
        ap.error("--fill needs --ledger FILE: the runs it completes are counted there")
    if args.first:
        ap.error("--fill chooses its own ranges from the ledger: leave out --first")
    try:
        done = ledger.read(args.ledger) if args.ledger.exists() else []
    except (OSError, ledger.LedgerError) as e:
        ap.error(f"--ledger: {e}")
    gaps = ledger.missing(done, seed=args.seed, mode=args.mode, code=code, upto=args.fill)
    for lo, hi in gaps:
        for first in range(lo, hi, args.schedules):
            if _run_piece(args, modes, first, min(args.schedules, hi - first), code):
                return 1
    group = f"{args.mode} seed {args.seed} code {code}:"
    print(*(line for line in ledger.summary(ledger.read(args.ledger)) if line.startswith(group)))
    if not gaps:
        print(f"schedules 0..{args.fill - 1} had all been run on this code: nothing to do")
    return 0


if __name__ == "__main__":
    sys.exit(main())
