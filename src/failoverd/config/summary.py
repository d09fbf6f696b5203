"""The human summary `failoverd check-config` prints: what this file makes the node do.

It answers the operator's questions in order: who am I and who is my peer,
which safety mode decides takeovers (and what it guarantees), what is checked,
what runs, with which timers, and how long a failover takes at worst.
Renderables are returned, not printed, so that the caller picks the console
(a terminal, a pipe, a test's buffer).
"""

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from failoverd.config.durations import format_duration
from failoverd.config.params import node_params
from failoverd.config.schema import (
    CheckConfig,
    ExecCheck,
    HttpCheck,
    NodeConfig,
    NodeSection,
    WitnessConfig,
)
from failoverd.core.params import vote_block
from failoverd.core.timing import worst_case
from failoverd.core.types import SafetyMode, ScriptPhase


def _secs(seconds: float) -> str:
    return format_duration(round(seconds, 3))


def _heading(title: str) -> Text:
    return Text(f"\n{title}", style="bold")


def _facts(rows: list[tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for name, value in rows:
        table.add_row(name, value)
    return table


def _columns(*names: str) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in names:
        table.add_column(name)
    return table


def safety_text(cfg: NodeConfig) -> list[Text]:
    """The mode in force, one line of what it guarantees, and a warning where it is unsafe."""
    mode = cfg.cluster.safety
    lines = [Text(f"Safety mode: {mode}", style="bold")]
    if mode is SafetyMode.WITNESS:
        witness = cfg.witness.name if cfg.witness is not None else "?"
        lines.append(
            Text(
                "A node runs the service only while it holds a lease granted by a majority "
                f"(itself + {cfg.peer.name}, or itself + witness {witness}) and demotes itself "
                "before the lease ends: never two active nodes, even under a network partition."
            )
        )
    elif mode is SafetyMode.FENCE:
        lines.append(
            Text(
                "The standby starts the service only after the fence command reported the peer "
                "fenced: never two active nodes, provided the fence command succeeds only once "
                "the peer certainly runs nothing."
            )
        )
    else:
        lines.append(
            Text(
                "The standby starts the service once the primary confirmed "
                "SHUTDOWN_YOUR_SERVICE, or after shutdown_timeout without an answer."
            )
        )
        lines.append(
            Text(
                "WARNING: UNSAFE under a network partition: both nodes may run the service at "
                'once (two writers). Use safety = "witness" (recommended) or "fence".',
                style="bold red",
            )
        )
    return lines


def _target(check: CheckConfig) -> str:
    if isinstance(check, HttpCheck):
        return check.url
    if isinstance(check, ExecCheck):
        return check.command
    return f"{check.host}:{check.port}"


def _checks(cfg: NodeConfig) -> RenderableType:
    if not cfg.check:
        return Text("none: only the peer's silence (host failure) is detected")
    table = _columns("name", "type", "scope", "target", "interval", "timeout", "rise", "fall")
    for c in cfg.check:
        table.add_row(
            c.name,
            c.type,
            str(c.scope),
            _target(c),
            _secs(c.interval),
            _secs(c.timeout),
            str(c.rise),
            str(c.fall),
        )
    return table


def _scripts(cfg: NodeConfig) -> RenderableType:
    table = _columns("phase", "command", "timeout")
    for phase in ScriptPhase:
        specs = cfg.scripts.specs(phase)
        if not specs:
            table.add_row(str(phase), "(none)", "")
        for s in specs:
            table.add_row(str(phase), s.command, _secs(s.timeout))
    return Group(Text(f"working directory: {cfg.scripts.working_dir}"), table)


def _timers(cfg: NodeConfig) -> RenderableType:
    t = cfg.timing

    def auto(value: object) -> str:
        return " (auto)" if value == "auto" else ""

    rows = [
        ("heartbeat_interval", _secs(t.heartbeat_interval)),
        ("dead_time", _secs(t.dead_time)),
        ("init_dead", _secs(t.init_dead)),
        ("shutdown_timeout", _secs(cfg.shutdown_timeout) + auto(t.shutdown_timeout)),
    ]
    if cfg.cluster.safety is SafetyMode.WITNESS:
        rows.append(("lease_time", _secs(cfg.lease_time) + auto(t.lease_time)))
        scripts = "demote" if cfg.scripts.demote else "shutdown"
        before = _secs(cfg.stop_budget + t.demote_margin)
        rows.append(("lease not renewed", f"{scripts} scripts, {before} before the lease ends"))
    rows += [
        ("clock_drift", f"{t.clock_drift:g}"),
        (
            "auto_failback",
            f"after {_secs(t.auto_failback_delay)}"
            if cfg.cluster.auto_failback
            else "off (failback is an operator's decision)",
        ),
    ]
    return _facts(rows)


def _scheduling(n: NodeSection) -> str:
    cpu = f"SCHED_RR priority {n.realtime_priority}" if n.realtime_priority else "normal scheduler"
    memory = "locked memory" if n.lock_memory else "memory not locked"
    return f"daemon: {cpu}, {memory} (not inherited by the scripts or the service)"


def _worst_case(cfg: NodeConfig) -> list[RenderableType]:
    bound = worst_case(node_params(cfg))
    worst = bound.worst
    out: list[RenderableType] = [
        Text(
            f"Worst case from a primary failure to the standby being active: "
            f"{_secs(bound.seconds)}",
            style="bold",
        )
    ]
    for path in bound.paths:
        table = _columns(f"{path.name}{' (the worst)' if path is worst else ''}", "")
        for term in path.terms:
            table.add_row(f"  {term.what}", _secs(term.seconds))
        table.add_row("  total", _secs(path.total), style="bold")
        out.append(table)
    out.append(
        Text(
            f"The worst total is stretched by 1 / (1 - clock_drift {bound.drift:g}) for clock "
            "rates; it assumes the peer's timing and scripts match this file's."
        )
    )
    return out


def node_summary(cfg: NodeConfig) -> Group:
    """What a node's configuration makes the node do, for `check-config`."""
    n, p = cfg.node, cfg.peer
    witness = f"{cfg.witness.name} at {cfg.witness.address}" if cfg.witness else "none"
    return Group(
        _facts(
            [
                ("This node", f"{n.name} (preference: {n.preference})"),
                ("", f"peer port {n.listen}, API {n.api}, state in {n.state_dir}"),
                ("", _scheduling(n)),
                ("Peer", f"{p.name} at {', '.join(p.addresses)}"),
                ("Witness", witness),
            ]
        ),
        Text(),
        *safety_text(cfg),
        _heading("Checks"),
        _checks(cfg),
        _heading("Scripts"),
        _scripts(cfg),
        _heading("Timers"),
        _timers(cfg),
        Text(),
        *_worst_case(cfg),
    )


def witness_summary(cfg: WitnessConfig) -> Group:
    """What a witness's configuration makes it do, for `check-config`."""
    w = cfg.witness
    block = vote_block(0.0, w.clock_drift, w.demote_margin)
    return Group(
        _facts(
            [
                ("Witness", f"{w.name}, listening on {w.listen}"),
                ("API", w.api or "none"),
                ("Nodes", " and ".join(w.nodes)),
                ("State", str(w.state_dir)),
                ("dead_time", _secs(w.dead_time)),
                ("clock_drift", f"{w.clock_drift:g}"),
                ("demote_margin", _secs(w.demote_margin)),
            ]
        ),
        Text(),
        Text("Role: the third vote of the witness safety mode", style="bold"),
        Text(
            "It grants its vote to one node at a time, and to no other until the lease it "
            f"granted has run out on its own clock, stretched for clock_drift, plus "
            f"demote_margin ({_secs(block)}): never two active nodes, even under a partition."
        ),
    )
