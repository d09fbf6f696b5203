"""`failoverd demo`: a real failover and failback on loopback, told as a timeline.

Two node daemons (and a witness, in witness mode) run as processes in a
temporary directory, each starting and stopping its own sample POP3 service
with its scripts. The demo kills the primary's daemon and service with
SIGKILL, measures how long until the standby's service answers, prints the
standby's decisions from its journal with their times since the kill, then
restarts the primary and fails back.
"""

import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from failoverd.core.types import SafetyMode
from failoverd.demo.cluster import Cluster, Node, pop3_greeting
from failoverd.demo.waiting import WaitTimeout, wait_for

STEP_TIMEOUT = 20.0
WITNESS_TIMEOUT = 10.0
POLL = 0.01


class DemoFailed(Exception):
    """A step did not turn out as it should; says which."""


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a timeline: seconds since the reference moment, who, what, details."""

    at: float
    who: str
    event: str
    detail: str = ""


def _wall(record: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(record["time"])).timestamp()


FAILURES = frozenset({"peer_silent", "peer_checks_failed", "remote_checks_failed", "peer_failed"})
"""Causes of a takeover that mean the peer failed (the others are planned or start-up)."""
SENT = "sending SHUTDOWN_YOUR_SERVICE to "


def _event(record: dict[str, Any]) -> tuple[str, str]:
    """A sysadmin's name for one journal record, and its details."""
    kind, reason, to = record["kind"], str(record["reason"]), record.get("to")
    if kind == "transition" and to == "taking_over":
        cause = str(record.get("details", {}).get("cause", ""))
        event = "failure detected" if cause in FAILURES else f"taking over ({cause})"
        return event, reason
    if kind == "transition":
        return f"{record.get('from')} → {to}", reason
    if kind == "command" and reason.startswith(SENT):
        return "SHUTDOWN_YOUR_SERVICE sent", f"to {reason[len(SENT) :].partition(':')[0]}"
    if kind == "command" and " answered " in reason:
        return "answer to SHUTDOWN_YOUR_SERVICE", reason
    label = {
        "takeover": "startup scripts started",
        "script": "scripts finished",
        "hold": "waiting",
        "lease": "vote",
    }.get(str(kind), str(kind))
    return label, reason


def journal_rows(records: Iterable[dict[str, Any]], since: float) -> list[Row]:
    """The records written at or after `since` (wall clock), as rows timed from it."""
    return [Row(_wall(r) - since, str(r["node"]), *_event(r)) for r in records if _wall(r) >= since]


def timeline_table(title: str, rows: Iterable[Row]) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("time", justify="right", style="cyan", no_wrap=True)
    table.add_column("who", style="bold")
    table.add_column("event", style="green")
    table.add_column("details", overflow="fold")
    for row in sorted(rows, key=lambda r: r.at):
        table.add_row(f"+{row.at:6.3f}s", row.who, row.event, row.detail)
    return table


class Demo:
    def __init__(self, console: Console, base: Path, safety: SafetyMode) -> None:
        self.console = console
        self.base = base
        self.safety = safety
        self.cluster: Cluster | None = None

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False)

    # -- the steps ------------------------------------------------------------------

    def run(self) -> None:
        began = time.monotonic()
        cluster = self.start_cluster()
        primary, standby = cluster.primary, cluster.standby
        failover = self.fail_primary(cluster, primary, standby)
        self.fail_back(cluster, primary, standby)
        self.say(
            f"\n[bold green]Demo complete[/] in {time.monotonic() - began:.1f}s. "
            f"Measured failover time (kill -9 → {standby.name}'s POP3 answering): "
            f"[bold]{failover:.3f}s[/]"
        )

    def start_cluster(self) -> Cluster:
        cluster, why = self.choose_safety()
        self.cluster = cluster
        self.say(f"Safety mode: [bold]{cluster.safety}[/] — {why}")
        for node in cluster.nodes:
            p = node.plan
            self.say(
                f"  {node.name}: {p.preference.value}, peer port {p.peer_port}, "
                f"API {p.api_url}, POP3 127.0.0.1:{p.pop3_port}"
            )
        began = time.monotonic()
        for node in cluster.nodes:
            node.daemon.start()
        self.say("\n[bold]1.[/] Starting both daemons...")
        cluster.wait_settled(cluster.primary, STEP_TIMEOUT)
        greeting = cluster.primary.pop3()
        self.say(
            f"   {cluster.primary.name} is active and its POP3 service answers {greeting!r}; "
            f"{cluster.standby.name} stands by ({time.monotonic() - began:.1f}s)"
        )
        return cluster

    def choose_safety(self) -> tuple[Cluster, str]:
        """A cluster in the requested mode; cooperative if the witness does not come up."""
        if self.safety is SafetyMode.COOPERATIVE:
            return (
                Cluster(self.base / "cooperative", SafetyMode.COOPERATIVE),
                "as asked: the seed's behaviour, confirmation or a timeout "
                "(unsafe under a network partition)",
            )
        cluster = Cluster(self.base / "witness", SafetyMode.WITNESS)
        assert cluster.witness is not None
        cluster.witness.start()
        try:
            cluster.wait_witness(WITNESS_TIMEOUT)
        except WaitTimeout as exc:
            tail = " ".join(cluster.witness.log_tail(3).split())
            cluster.close()
            return (
                Cluster(self.base / "cooperative", SafetyMode.COOPERATIVE),
                f"the witness process did not come up ({exc}{': ' + tail if tail else ''}), "
                "so the seed's cooperative mode is used (unsafe under a network partition)",
            )
        lease = cluster.primary.config.lease_time
        return (
            cluster,
            f"a third process, `failoverd witness`, is running (pid {cluster.witness.pid}); "
            "a node serves only while a majority of the primary, the standby and the witness "
            "grants it a lease, so two nodes never serve at once, even under a partition. "
            f"A takeover waits for the dead primary's lease ({lease:g}s) to run out.",
        )

    def fail_primary(self, cluster: Cluster, primary: Node, standby: Node) -> float:
        """Kill the primary; print the standby's takeover; the failover time."""
        killed_at = time.time()
        daemon_pid, service_pid = cluster.kill_node(primary)
        self.say(
            f"\n[bold]2.[/] [red]kill -9[/] {primary.name}'s daemon (pid {daemon_pid}) "
            f"and its POP3 service (pid {service_pid})"
        )
        greeting = wait_for(
            lambda: pop3_greeting(standby.plan.pop3_port, timeout=0.2),
            STEP_TIMEOUT,
            f"{standby.name}'s POP3 service to answer",
            interval=POLL,
        )
        answered = time.time() - killed_at
        standby.wait_state("active", STEP_TIMEOUT)
        rows = [
            Row(0.0, "demo", "kill -9", f"{primary.name}: daemon and POP3 service"),
            *journal_rows(standby.journal(), killed_at),
            *journal_rows(cluster.witness_journal(), killed_at),
            Row(
                answered,
                "demo",
                "service answering again",
                f"{greeting!r} on port {standby.plan.pop3_port} (polled every {POLL * 1000:g}ms)",
            ),
        ]
        self.say(f"\n[bold]3.[/] {standby.name} takes over:")
        self.console.print(timeline_table(f"Failover timeline ({standby.name}'s journal)", rows))
        self.say(f"   Failover time: [bold]{answered:.3f}s[/] from the kill to POP3 answering")
        return answered

    def fail_back(self, cluster: Cluster, primary: Node, standby: Node) -> None:
        """Restart the primary's daemon, then fail back to it."""
        self.say(f"\n[bold]4.[/] Restarting {primary.name}'s daemon...")
        restarted_at = time.time()
        primary.daemon.start()
        cluster.wait_settled(standby, STEP_TIMEOUT)
        for row in journal_rows(primary.journal(), restarted_at):
            if "→" in row.event:
                self.say(f"   {primary.name}: {row.event}: {row.detail}")
        asked_at = time.time()
        for line in self.request_failback(primary).splitlines():
            self.say(f"   {line}")
        cluster.wait_settled(primary, STEP_TIMEOUT)
        wait_for(
            lambda: standby.pop3() is None,
            STEP_TIMEOUT,
            f"{standby.name}'s POP3 service to stop",
        )
        took = time.time() - asked_at
        rows = [
            r
            for r in journal_rows([*primary.journal(), *standby.journal()], asked_at)
            if r.event not in ("waiting", "check", "vote")
        ]
        self.console.print(timeline_table("Failback timeline (both journals)", rows))
        self.say(
            f"   {primary.name} is active again and answers {primary.pop3()!r}; "
            f"{standby.name} stands by, its service stopped ({took:.1f}s)"
        )

    def request_failback(self, primary: Node) -> str:
        """Ask for the failback as an operator would: `failoverd failback`."""
        done = primary.cli("failback")
        if done.returncode != 0:
            raise DemoFailed(f"failoverd failback failed: {done.stderr or done.stdout}")
        return f"$ failoverd failback -c {primary.plan.config}\n{done.stdout.strip()}"


def run_demo(console: Console, safety: SafetyMode, keep: bool) -> int:
    """Run the demo in a new temporary directory; 0 on success, 1 on failure."""
    base = Path(tempfile.mkdtemp(prefix="failoverd-demo-"))
    console.print(
        "[bold]failoverd demo[/]: two daemons on loopback, a sample POP3 service, "
        "a real failover and failback",
        highlight=False,
    )
    console.print(f"Directory: {base} (configs, daemon logs, journals)", highlight=False)
    demo = Demo(console, base, safety)
    failed = False
    try:
        demo.run()
    except (WaitTimeout, DemoFailed) as exc:
        failed = True
        console.print(f"\n[bold red]Demo failed:[/] {exc}", highlight=False)
        if demo.cluster is not None:
            for node in demo.cluster.nodes:
                console.print(f"  {node.name}'s daemon log: {node.plan.log}", highlight=False)
            if demo.cluster.witness is not None:
                console.print(f"  witness log: {demo.cluster.witness.log}", highlight=False)
    finally:
        if demo.cluster is not None:
            demo.cluster.close()
        if keep or failed:
            console.print(f"Kept {base}", highlight=False)
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 1 if failed else 0
