"""Seeded fault schedules: a configuration, starting conditions and timed faults.

`generate(seed, index, mode)` draws everything from one `random.Random` seeded
with the string "seed/index/mode", so a schedule is the same on every machine
and in every process; except for the demote scripts (witness mode: whether there
are any, their budget and behaviour), drawn from a second one seeded with
"seed/index/mode/demote", so that adding them left every other draw, and the
verdicts of the schedules without them, as they were. Three kinds of schedule:

- chaos: anything, to check safety: loss, duplication, reordering, delays
  within and beyond `max_network_delay`, cuts (both ways, one way, isolated
  hosts), crashes and restarts of either node and of the witness (which may
  lose its disk), clock-rate changes, daemon stalls, broken services, scripts
  and fences that fail or hang (a failed fence may still have powered off); with
  demote scripts, also a node cut off while its graceful shutdown runs.
- liveness: a clean start, then at `trigger_at` the active node's host crashes
  and stays down (or its service breaks), with everything the worst-case bound
  assumes holding from then on. See `check.py` for what is measured.
- stability (witness mode): loss and cuts between the two nodes only.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from enum import StrEnum

from failoverd.core.params import CheckSpec, Timing, vote_block
from failoverd.core.timing import check_detection
from failoverd.core.types import CheckScope, SafetyMode, ScriptPhase
from tests.sim.cluster import (
    HOSTS,
    NODES,
    PRIMARY,
    STANDBY,
    WITNESS,
    Budgets,
    Cluster,
    Link,
    ScriptBehaviour,
)

MODES = (SafetyMode.WITNESS, SafetyMode.FENCE, SafetyMode.COOPERATIVE)
# The phases every schedule draws behaviours for from its main generator (demote: see above).
PHASES = (ScriptPhase.STARTUP, ScriptPhase.SHUTDOWN, ScriptPhase.FENCE)
PAIRS = ((PRIMARY, STANDBY), (PRIMARY, WITNESS), (STANDBY, WITNESS))


class Kind(StrEnum):
    CHAOS = "chaos"
    LIVENESS = "liveness"
    STABILITY = "stability"


class Trigger(StrEnum):
    """How the active node fails in a liveness schedule."""

    CRASH = "crash"  # its host dies and stays down
    BREAK = "break"  # its service stops answering checks; the host stays up


# -- faults: timed changes to the cluster, each printable for the trace ---------------


@dataclass(frozen=True)
class SetLink:
    src: str
    dst: str
    link: Link

    def apply(self, c: Cluster) -> None:
        c.set_link(self.src, self.dst, dataclasses.replace(self.link))


@dataclass(frozen=True)
class Cut:
    src: str
    dst: str
    both: bool
    up: bool

    def apply(self, c: Cluster) -> None:
        if self.both:
            c.cut(self.src, self.dst, self.up)
        else:
            c.cut_one(self.src, self.dst, self.up)


@dataclass(frozen=True)
class Crash:
    host: str

    def apply(self, c: Cluster) -> None:
        c.crash(self.host)


@dataclass(frozen=True)
class Start:
    host: str
    wipe: bool = False

    def apply(self, c: Cluster) -> None:
        c.start(self.host, wipe=self.wipe)


@dataclass(frozen=True)
class SetScripts:
    node: str
    phase: ScriptPhase
    behaviour: ScriptBehaviour

    def apply(self, c: Cluster) -> None:
        c.nodes[self.node].scripts[self.phase] = self.behaviour
        c.log(f"{self.node} {self.phase} scripts from now on: {self.behaviour}")


@dataclass(frozen=True)
class SetRate:
    host: str
    rate: float

    def apply(self, c: Cluster) -> None:
        c.set_rate(self.host, self.rate)


@dataclass(frozen=True)
class Stall:
    node: str
    seconds: float

    def apply(self, c: Cluster) -> None:
        c.stall(self.node, self.seconds)


@dataclass(frozen=True)
class Break:
    node: str

    def apply(self, c: Cluster) -> None:
        c.break_service(self.node)


Fault = SetLink | Cut | Crash | Start | SetScripts | SetRate | Stall | Break


@dataclass(frozen=True)
class Setup:
    """The configuration both nodes share."""

    timing: Timing
    budgets: Budgets
    checks: tuple[CheckSpec, ...]


@dataclass(frozen=True)
class Schedule:
    seed: int
    index: int
    mode: SafetyMode
    kind: Kind
    span: float
    setup: Setup
    rates: dict[str, float]
    links: dict[tuple[str, str], Link]
    scripts: dict[tuple[str, ScriptPhase], ScriptBehaviour]
    starts: dict[str, float]
    faults: tuple[tuple[float, Fault], ...]
    # Liveness: when and how the active node fails.
    trigger_at: float | None = None
    trigger: Trigger | None = None

    @property
    def name(self) -> str:
        return f"{self.mode} seed {self.seed} index {self.index} ({self.kind})"

    def describe(self) -> list[str]:
        t = self.setup.timing
        b = self.setup.budgets
        lines = [
            f"schedule {self.name}, {self.span:.1f}s",
            "timing: "
            + ", ".join(f"{f.name} {getattr(t, f.name):g}" for f in dataclasses.fields(t)),
            f"script budgets: startup {b.startup:g}, shutdown {b.shutdown:g}, fence {b.fence:g}"
            + ("" if b.demote is None else f", demote {b.demote:g}"),
            "checks: "
            + (
                "; ".join(
                    f"{c.name} ({c.scope}) every {c.interval:g}s rise {c.rise} fall {c.fall}"
                    for c in self.setup.checks
                )
                or "none"
            ),
            "clock rates: " + ", ".join(f"{h} {r:.4f}" for h, r in self.rates.items()),
            "starts: " + ", ".join(f"{h} at {s:.2f}s" for h, s in self.starts.items()),
        ]
        lines += [f"link {a}->{b}: {link}" for (a, b), link in self.links.items()]
        lines += [f"{n} {p} scripts: {s}" for (n, p), s in self.scripts.items()]
        lines += [f"fault at {at:.3f}s: {fault}" for at, fault in self.faults]
        if self.trigger_at is not None:
            lines.append(f"at {self.trigger_at:.3f}s the active node fails ({self.trigger})")
        return lines


# -- drawing -------------------------------------------------------------------------


def _log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _setup(rng: random.Random, demote_rng: random.Random | None) -> Setup:
    """A configuration `check-config` accepts, around the defaults. `demote_rng`
    (witness mode) decides whether there are demote scripts, and their budget."""
    h = 0.2 if rng.random() < 0.4 else _log_uniform(rng, 0.1, 1.0)
    dead_time = h * rng.uniform(2.05, 6.0)
    drift = rng.choice((0.0, 0.001, 0.01, 0.01, 0.02, 0.05))
    margin = 0.0 if rng.random() < 0.1 else rng.uniform(0.02, 0.5)
    startup, shutdown, fence = (rng.uniform(0.3, 4.0) for _ in range(3))
    demote = (
        demote_rng.uniform(0.05, 1.0)
        if demote_rng is not None and demote_rng.random() < 0.5
        else None
    )
    auto_lease = rng.random() < 0.6
    if demote is not None and auto_lease and dead_time <= 3 * h:
        demote = None  # check-config refuses an auto lease too short for demote scripts
    budgets = Budgets(startup=startup, shutdown=shutdown, fence=fence, demote=demote)
    # As config.schema: the lease is sized by the stop it forces; with demote scripts a
    # graceful shutdown needs one more heartbeat of it.
    stop, beats = (shutdown, 2) if demote is None else (demote, 3)
    least_lease = stop + margin + beats * h
    lease_time = (
        dead_time + stop + margin  # "auto"
        if auto_lease
        else least_lease + h * rng.uniform(0.05, 4.0)
    )
    shutdown_timeout = (
        budgets.shutdown + 1.0  # "auto"
        if rng.random() < 0.6
        else budgets.shutdown * rng.uniform(0.5, 2.0)
    )
    timing = Timing(
        heartbeat_interval=h,
        dead_time=dead_time,
        init_dead=dead_time * rng.uniform(1.5, 4.0),
        shutdown_timeout=shutdown_timeout,
        lease_time=lease_time,
        drift=drift,
        demote_margin=margin,
        max_network_delay=rng.uniform(0.005, min(0.1, h / 2)),
        fence_retry=rng.uniform(0.2, 5.0),
        auto_failback_delay=30.0,
    )
    checks = []
    for scope, name in ((CheckScope.LOCAL, "pop3"), (CheckScope.REMOTE, "pop3-peer")):
        if rng.random() < 0.85:
            interval = rng.uniform(0.2, 2.0)
            checks.append(
                CheckSpec(
                    name,
                    scope,
                    interval=interval,
                    timeout=interval * rng.uniform(0.1, 0.9),
                    rise=rng.randint(1, 3),
                    fall=rng.randint(1, 4),
                )
            )
    return Setup(timing, budgets, tuple(checks))


def _rate(rng: random.Random, drift: float) -> float:
    roll = rng.random()
    if roll < 0.3:
        return 1 - drift
    if roll < 0.6:
        return 1 + drift
    return rng.uniform(1 - drift, 1 + drift)


def _clean_link(rng: random.Random, max_delay: float, *, duplicate: bool = True) -> Link:
    """Delays within the bound (reordering included), no loss."""
    hi = rng.uniform(0.0, max_delay)
    dup = rng.uniform(0.0, 0.2) if duplicate and rng.random() < 0.3 else 0.0
    return Link(delay=(rng.uniform(0.0, hi), hi), duplicate=dup)


def _bad_link(rng: random.Random, max_delay: float, *, beyond: bool) -> Link:
    """Loss up to 50 %, duplication, and delays within the bound or (`beyond`) past it."""
    if beyond and rng.random() < 0.3:
        hi = rng.uniform(max_delay, 3.0)
    else:
        hi = rng.uniform(0.0, max_delay)
    return Link(
        delay=(rng.uniform(0.0, hi), hi),
        loss=rng.uniform(0.0, 0.5),
        duplicate=rng.uniform(0.0, 0.3) if rng.random() < 0.5 else 0.0,
    )


def _ok_scripts(rng: random.Random, phase: ScriptPhase, budget: float) -> ScriptBehaviour:
    return ScriptBehaviour(duration=budget * rng.uniform(0.0, 0.9), outcome="ok")


def _bad_scripts(rng: random.Random, phase: ScriptPhase, budget: float) -> ScriptBehaviour:
    outcome = rng.choice(("fail", "hang", "slow"))
    if outcome == "slow":  # past its budget: killed, counts as failed
        return ScriptBehaviour(duration=budget * rng.uniform(0.5, 1.5))
    return ScriptBehaviour(
        duration=budget * rng.uniform(0.0, 0.9),
        outcome=outcome,
        powers_off=phase is ScriptPhase.FENCE and rng.random() < 0.3,
    )


def _budget(setup: Setup, phase: ScriptPhase) -> float:
    b = setup.budgets
    budgets = {
        ScriptPhase.STARTUP: b.startup,
        ScriptPhase.SHUTDOWN: b.shutdown,
        ScriptPhase.FENCE: b.fence,
        ScriptPhase.DEMOTE: b.demote,
    }
    budget = budgets[phase]
    assert budget is not None, f"no {phase} scripts in this schedule"
    return budget


def settle_time(setup: Setup) -> float:
    """On a clean network, a node is active by then (generously): init_dead, the
    restarted voters' quiet block, a vote round and the startup scripts."""
    t = setup.timing
    block = vote_block(t.lease_time, t.drift, t.demote_margin)
    local = t.init_dead + block + 3 * t.heartbeat_interval + setup.budgets.startup
    return local / (1 - t.drift) + 1.0


def _together(rng: random.Random, setup: Setup, hosts: tuple[str, ...]) -> dict[str, float]:
    """Start times close enough that each node hears the other within init_dead."""
    spread = min(1.0, setup.timing.init_dead / 2)
    return {h: rng.uniform(0.0, spread) for h in hosts}


def mode_of(index: int, modes: tuple[SafetyMode, ...]) -> SafetyMode:
    return modes[index % len(modes)]


def generate(seed: int, index: int, mode: SafetyMode) -> Schedule:
    rng = random.Random(f"{seed}/{index}/{mode}")
    witness = mode is SafetyMode.WITNESS
    demote_rng = random.Random(f"{seed}/{index}/{mode}/demote") if witness else None
    roll = rng.random()
    if witness and roll < 0.15:
        kind = Kind.STABILITY
    elif roll < 0.4:
        kind = Kind.LIVENESS
    else:
        kind = Kind.CHAOS
    setup = _setup(rng, demote_rng)
    t = setup.timing
    if setup.budgets.demote is None:
        demote_rng = None  # no demote scripts to draw behaviours for
    hosts = HOSTS if witness else NODES
    rates = {h: _rate(rng, t.drift) for h in hosts}
    scripts = {(n, p): _ok_scripts(rng, p, _budget(setup, p)) for n in NODES for p in PHASES}
    if demote_rng is not None:
        for n in NODES:
            scripts[(n, ScriptPhase.DEMOTE)] = _ok_scripts(
                demote_rng, ScriptPhase.DEMOTE, _budget(setup, ScriptPhase.DEMOTE)
            )
    links = {(a, b): _clean_link(rng, t.max_network_delay) for a in hosts for b in hosts if a != b}
    base = dict(links)
    span = rng.uniform(60.0, 120.0)
    faults: list[tuple[float, Fault]] = []
    trigger_at = trigger = None
    if kind is Kind.CHAOS:
        starts = {h: rng.uniform(0.0, 5.0) for h in hosts}
        for a, b in list(links):
            if rng.random() < 0.4:
                links[(a, b)] = base[(a, b)] = _bad_link(rng, t.max_network_delay, beyond=False)
        for _ in range(rng.randint(1, 8)):
            faults += _episode(rng, demote_rng, mode, setup, span, base, rates)
        if demote_rng is not None and demote_rng.random() < 0.5:
            faults += _cut_off_while_stopping(demote_rng, setup, span)
    elif kind is Kind.STABILITY:
        starts = _together(rng, setup, hosts)
        for _ in range(rng.randint(1, 6)):
            faults += _between_nodes(rng, setup, span, base)
    else:
        starts = _together(rng, setup, hosts)
        # A broken service is noticed by the primary's own checks, or (outside witness
        # mode, where the witness's word overrules them) by the standby's remote ones.
        scopes = {c.scope for c in setup.checks}
        noticed = CheckScope.LOCAL in scopes or (
            CheckScope.REMOTE in scopes and mode is not SafetyMode.WITNESS
        )
        trigger = Trigger.BREAK if noticed and rng.random() < 0.25 else Trigger.CRASH
        trigger_at = settle_time(setup) + rng.uniform(0.0, 20.0)
        # After the deadline (well past any bound) the failed node may come back.
        back = trigger_at + 60.0
        span = max(span, back + rng.uniform(5.0, 30.0))
        if trigger is Trigger.CRASH and rng.random() < 0.5:
            faults.append((back, Start(PRIMARY)))
            faults.append((back, Start(STANDBY)))
    return Schedule(
        seed=seed,
        index=index,
        mode=mode,
        kind=kind,
        span=span,
        setup=setup,
        rates=rates,
        links=links,
        scripts=scripts,
        starts=starts,
        faults=tuple(sorted(faults, key=lambda f: f[0])),
        trigger_at=trigger_at,
        trigger=trigger,
    )


def _window(rng: random.Random, span: float, earliest: float = 0.0) -> tuple[float, float]:
    start = rng.uniform(min(earliest, span), span)
    return start, start + _log_uniform(rng, 0.1, 30.0)


def _between_nodes(
    rng: random.Random, setup: Setup, span: float, base: dict[tuple[str, str], Link]
) -> list[tuple[float, Fault]]:
    """Loss (up to all of it), duplication and cuts between the two nodes only, once the
    cluster has settled. Before that the stability promise does not hold and is not
    checked: a witness that has just started grants no vote for a lease time (it
    cannot know what it granted before), so a cut between the nodes then leaves the
    active node without a majority, and it must demote. Safety is checked throughout."""
    start, end = _window(rng, span, earliest=settle_time(setup))
    directions = rng.choice(((PRIMARY, STANDBY), (STANDBY, PRIMARY), None))
    pairs = [directions] if directions else [(PRIMARY, STANDBY), (STANDBY, PRIMARY)]
    out: list[tuple[float, Fault]] = []
    for a, b in pairs:
        if rng.random() < 0.4:
            out += [(start, Cut(a, b, both=False, up=False)), (end, Cut(a, b, both=False, up=True))]
        else:
            link = _bad_link(rng, setup.timing.max_network_delay, beyond=False)
            link.loss = rng.uniform(0.0, 1.0)
            out += [(start, SetLink(a, b, link)), (end, SetLink(a, b, base[(a, b)]))]
    return out


def _cut_off_while_stopping(
    rng: random.Random, setup: Setup, span: float
) -> list[tuple[float, Fault]]:
    """A node's service breaks and, about when its graceful shutdown (a slow one) has
    begun, the node is cut off from peer and witness: the shutdown, longer than what is
    left of the lease, must give way to the demote scripts in time (`NodeCore.escalate_at`).
    Drawn from the demote generator, in schedules with demote scripts only."""
    t = setup.timing
    budget = setup.budgets.shutdown
    node = rng.choice(NODES)
    start = rng.uniform(0.0, span)
    local = tuple(c for c in setup.checks if c.scope is CheckScope.LOCAL)
    noticed = check_detection(local) + t.heartbeat_interval
    cut = start + noticed + rng.uniform(0.0, budget / 2)
    heal = cut + _log_uniform(rng, 1.0, 30.0)
    peers = [h for h in HOSTS if h != node]
    slow = ScriptBehaviour(duration=budget * rng.uniform(0.5, 0.95))
    usual = _ok_scripts(rng, ScriptPhase.SHUTDOWN, budget)
    return [
        (start, SetScripts(node, ScriptPhase.SHUTDOWN, slow)),
        (start, Break(node)),
        *((cut, Cut(node, p, True, up=False)) for p in peers),
        *((heal, Cut(node, p, True, up=True)) for p in peers),
        (heal, SetScripts(node, ScriptPhase.SHUTDOWN, usual)),
    ]


def _episode(
    rng: random.Random,
    demote_rng: random.Random | None,
    mode: SafetyMode,
    setup: Setup,
    span: float,
    base: dict[tuple[str, str], Link],
    rates: dict[str, float],
) -> list[tuple[float, Fault]]:
    t = setup.timing
    witness = mode is SafetyMode.WITNESS
    start, end = _window(rng, span)
    kinds = ["degrade", "cut", "isolate", "crash", "scripts", "rate", "stall", "break"]
    weights = [20, 20, 10, 15, 12, 5, 5, 5]
    if witness:
        kinds.append("witness")
        weights.append(8)
    kind = rng.choices(kinds, weights)[0]
    pairs = PAIRS if witness else PAIRS[:1]
    if kind == "degrade":
        a, b = rng.choice(pairs)
        directions = [(a, b), (b, a)] if rng.random() < 0.5 else [rng.choice(((a, b), (b, a)))]
        out: list[tuple[float, Fault]] = []
        for src, dst in directions:
            link = _bad_link(rng, t.max_network_delay, beyond=True)
            out += [(start, SetLink(src, dst, link)), (end, SetLink(src, dst, base[(src, dst)]))]
        return out
    if kind == "cut":
        a, b = rng.choice(pairs)
        if rng.random() < 0.5:
            a, b = b, a
        both = rng.random() < 0.6
        out = [(start, Cut(a, b, both, up=False))]
        if rng.random() < 0.85:
            out.append((end, Cut(a, b, both, up=True)))
        return out
    if kind == "isolate":
        host = rng.choice(HOSTS if witness else NODES)
        peers = [h for h in (HOSTS if witness else NODES) if h != host]
        out = [(start, Cut(host, p, True, up=False)) for p in peers]
        if rng.random() < 0.85:
            out += [(end, Cut(host, p, True, up=True)) for p in peers]
        return out
    if kind == "crash":
        node = rng.choice(NODES)
        out = [(start, Crash(node))]
        if rng.random() < 0.85:
            out.append((end, Start(node)))
        return out
    if kind == "witness":
        return [(start, Crash(WITNESS)), (end, Start(WITNESS, wipe=rng.random() < 0.4))]
    if kind == "scripts":
        node = rng.choice(NODES)
        phases = [ScriptPhase.STARTUP, ScriptPhase.SHUTDOWN]
        if mode is SafetyMode.FENCE:
            phases.append(ScriptPhase.FENCE)
        phase = rng.choice(phases)
        if phase is ScriptPhase.SHUTDOWN and demote_rng is not None and demote_rng.random() < 0.5:
            phase = ScriptPhase.DEMOTE  # (the same draws from `rng` either way)
        budget = _budget(setup, phase)
        return [
            (start, SetScripts(node, phase, _bad_scripts(rng, phase, budget))),
            (end, SetScripts(node, phase, _ok_scripts(rng, phase, budget))),
        ]
    if kind == "rate":
        host = rng.choice(list(rates))
        return [(start, SetRate(host, _rate(rng, t.drift)))]
    if kind == "stall":
        return [(start, Stall(rng.choice(NODES), _log_uniform(rng, 0.2, 20.0)))]
    return [(start, Break(rng.choice(NODES)))]
