"""`failoverd selftest`: the lab's fault scenarios on this machine, and a verdict table."""

import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.box import SIMPLE_HEAD
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from failoverd.cli.main import cli
from failoverd.core.types import SafetyMode

if TYPE_CHECKING:
    from failoverd.lab.scenarios import ScenarioResult

UNAVAILABLE = 2
"""Exit code when this machine cannot run the lab."""


def _unavailable() -> str | None:
    """Why this machine cannot run the lab, in one line, or None."""
    from failoverd.lab.dovecot import dovecot_available  # noqa: PLC0415
    from failoverd.lab.netns import LabUnavailable, Topology  # noqa: PLC0415

    if os.geteuid() != 0:
        return "needs root (network namespaces, iptables): run it as root"
    hint = "install the lab's packages with `make system-deps` (as root)"
    try:
        Topology.require()
    except LabUnavailable as e:
        return f"{e}; {hint}"
    if shutil.which("haproxy") is None:
        return f"HAProxy is not installed; {hint}"
    if not dovecot_available():
        return f"Dovecot is not installed; {hint}"
    return None


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "?"
    return f"{value:.1f}s"


@cli.command()
@click.option(
    "--quick", is_flag=True, help="A subset of the scenarios, with short faults: under 2 minutes."
)
@click.option(
    "--mode",
    type=click.Choice([m.value for m in SafetyMode]),
    default=SafetyMode.WITNESS.value,
    show_default=True,
    help="The safety mode of the lab cluster (cooperative is unsafe: its dual activity and "
    "false failovers are reported, not counted as failures).",
)
@click.option(
    "--keep", is_flag=True, help="Keep every scenario's configs, logs and journals, and say where."
)
@click.option(
    "--scenario",
    "only",
    multiple=True,
    metavar="NAME",
    help="Run only this scenario (repeatable); see --list.",
)
@click.option("--list", "list_only", is_flag=True, help="List the scenarios and exit.")
def selftest(quick: bool, mode: str, keep: bool, only: tuple[str, ...], list_only: bool) -> None:
    """Run the fault scenarios against this failoverd in a lab on this machine (root).

    Each scenario builds hosts in network namespaces (primary, standby,
    witness, a load balancer with HAProxy, a client), runs the installed
    failoverd on them with a real Dovecot as the service, injects one fault
    (killed processes, cut links, packet loss, frozen daemons, hanging
    scripts, operator commands) and checks that the service comes back
    through HAProxy, that two Dovecots never serve at once, and that both
    nodes agree afterwards. Nothing outside the lab's namespaces is touched;
    they are removed at the end, even on Ctrl-C. Exits 0 only if every
    scenario passed.
    """
    from failoverd.lab.scenarios import (  # noqa: PLC0415 (the lab is not needed for --help)
        BY_NAME,
        QUICK,
        SCENARIOS,
        run_matrix,
    )

    if list_only:
        for s in SCENARIOS:
            click.echo(f"{s.name:22} {s.summary}{'  (quick)' if s.quick else ''}")
        return
    unknown = [name for name in only if name not in BY_NAME]
    if unknown:
        raise click.BadParameter(
            f"no scenario {', '.join(unknown)} (see --list)", param_hint="--scenario"
        )
    problem = _unavailable()
    if problem is not None:
        click.echo(f"failoverd selftest: {problem}", err=True)
        sys.exit(UNAVAILABLE)
    chosen = [BY_NAME[n] for n in only] if only else list(QUICK if quick else SCENARIOS)
    safety = SafetyMode(mode)
    keep_dir = None
    if keep:
        keep_dir = Path(tempfile.mkdtemp(prefix="failoverd-selftest-"))
        keep_dir.chmod(0o755)  # Dovecot's unprivileged processes must reach the run dirs
    console = Console(highlight=False)
    console.print(
        f"failoverd selftest: {len(chosen)} scenarios, safety mode {safety.value}, "
        f"{'short' if quick else 'full'} fault durations"
    )
    started = time.monotonic()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=len(chosen))

        def done(r: "ScenarioResult") -> None:
            mark = "[green]✓[/]" if r.passed else "[bold red]✗[/]"
            progress.console.print(f"{mark} {r.name} ({r.seconds:.0f}s)")
            progress.advance(task)

        results = run_matrix(
            chosen,
            safety,
            long=not quick,
            keep_dir=keep_dir,
            step=lambda s, text: progress.update(task, description=f"{s.name}: {text}"),
            done=done,
        )
    console.print(_verdict(results))
    for r in results:
        if not r.passed or r.mode is SafetyMode.COOPERATIVE:
            console.print(Text(f"{r.name}: {r.details}", style="" if r.passed else "red"))
    failed = sum(not r.passed for r in results)
    summary = f"{len(results) - failed}/{len(results)} passed in {time.monotonic() - started:.0f}s"
    console.print(Text(summary, style="bold green" if not failed else "bold red"))
    if keep_dir is not None:
        console.print(f"configs, logs and journals kept in {keep_dir}")
    sys.exit(1 if failed else 0)


def _verdict(results: "list[ScenarioResult]") -> Table:
    table = Table(
        title="verdict", title_justify="left", header_style="bold", box=SIMPLE_HEAD, pad_edge=False
    )
    table.add_column("scenario", no_wrap=True)
    table.add_column("result", justify="center", no_wrap=True)
    for column in ("time to\nservice", "dual-\nactive", "false\nfailovers", "longest\noutage"):
        table.add_column(column, justify="right", no_wrap=True)
    for r in results:
        table.add_row(
            r.name,
            Text("✓", style="green") if r.passed else Text("✗", style="bold red"),
            _seconds(r.time_to_service),
            _seconds(r.dual_active_seconds),
            str(r.false_failovers),
            _seconds(r.longest_outage),
        )
    return table
