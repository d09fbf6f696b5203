"""A deterministic cluster: the real `core` of two nodes and a witness, driven by
a virtual clock and a simulated network.

Everything that would be I/O in the daemon happens here as scheduled events:
message delivery (with per-link delay, loss, duplication, partitions), script
phases (with durations, failures, hangs killed at their timeout on the node's
own clock), crashes and restarts (persisted state kept), per-node clock rates.
Services are modelled directly: a node's service runs from the first startup
script until its last shutdown script has finished, or until it crashes.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from failoverd.core.actions import (
    Action,
    CancelScripts,
    Persist,
    Record,
    ReplyShutdown,
    ReplyTakeover,
    RunScripts,
    SendAck,
    SendHeartbeat,
    SendShutdown,
    SendTakeover,
)
from failoverd.core.events import (
    AckReceived,
    CheckResult,
    Event,
    HeartbeatReceived,
    ScriptsFinished,
    ShutdownAnswered,
    ShutdownRequested,
    TakeoverAnswered,
    TakeoverRequested,
    Tick,
)
from failoverd.core.node import NodeCore
from failoverd.core.params import CheckSpec, NodeParams, Timing
from failoverd.core.records import Decision, PersistedState
from failoverd.core.types import CheckScope, Preference, SafetyMode, ScriptPhase, ShutdownOutcome
from failoverd.core.witness import WitnessCore

PRIMARY, STANDBY, WITNESS = "cfg1", "cfg2", "wit"


@dataclass
class Link:
    """One direction of a link."""

    delay: tuple[float, float] = (0.001, 0.005)
    loss: float = 0.0
    duplicate: float = 0.0
    up: bool = True


@dataclass
class ScriptBehaviour:
    """How a phase's scripts behave: run `duration`, then succeed, fail, or hang until killed."""

    duration: float = 0.05
    outcome: str = "ok"  # ok | fail | hang


@dataclass
class Interval:
    start: float
    end: float | None = None


@dataclass
class SimNode:
    name: str
    params: NodeParams
    rate: float = 1.0
    offset: float = 0.0
    core: NodeCore | None = None
    persisted: PersistedState | None = None
    alive: bool = True
    boots: int = 0
    service: list[Interval] = field(default_factory=list)
    scripts: dict[ScriptPhase, ScriptBehaviour] = field(default_factory=dict)
    running_phase: tuple[ScriptPhase, int] | None = None
    timer_gen: int = 0
    decisions: list[Decision] = field(default_factory=list)

    def local(self, t: float) -> float:
        return self.offset + self.rate * t

    def real(self, local: float) -> float:
        return (local - self.offset) / self.rate

    @property
    def serving(self) -> bool:
        return bool(self.service) and self.service[-1].end is None


@dataclass
class SimWitness:
    name: str
    rate: float = 1.0
    offset: float = 0.0
    core: WitnessCore | None = None
    persisted: PersistedState | None = None
    alive: bool = True

    def local(self, t: float) -> float:
        return self.offset + self.rate * t


def default_timing(**overrides: float) -> Timing:
    values: dict[str, float] = {
        "heartbeat_interval": 0.2,
        "dead_time": 1.0,
        "init_dead": 3.0,
        "shutdown_timeout": 2.0,
        "lease_time": 2.4,
        "drift": 0.01,
        "demote_margin": 0.2,
        "max_network_delay": 0.05,
        "fence_retry": 1.0,
        "auto_failback_delay": 30.0,
    }
    values.update(overrides)
    return Timing(**values)


def node_params(
    name: str,
    peer: str,
    preference: Preference,
    mode: SafetyMode,
    timing: Timing,
    *,
    checks: tuple[CheckSpec, ...] = (),
    startup_budget: float = 1.0,
    shutdown_budget: float = 1.0,
    fence_budget: float = 1.0,
) -> NodeParams:
    return NodeParams(
        name=name,
        peer=peer,
        preference=preference,
        mode=mode,
        witness=WITNESS if mode is SafetyMode.WITNESS else None,
        timing=timing,
        startup_budget=startup_budget,
        shutdown_budget=shutdown_budget,
        fence_budget=fence_budget,
        auto_failback=False,
        checks=checks,
    )


POP3_LOCAL = CheckSpec("pop3", CheckScope.LOCAL, interval=0.5, timeout=0.3, rise=1, fall=2)
POP3_REMOTE = CheckSpec("pop3-peer", CheckScope.REMOTE, interval=0.5, timeout=0.3, rise=1, fall=3)


class Cluster:
    def __init__(
        self,
        mode: SafetyMode = SafetyMode.WITNESS,
        timing: Timing | None = None,
        seed: int = 0,
        checks: tuple[CheckSpec, ...] = (POP3_LOCAL, POP3_REMOTE),
    ) -> None:
        self.mode = mode
        self.timing = timing or default_timing()
        self.rng = random.Random(seed)
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.trace: list[str] = []
        self.nodes = {
            PRIMARY: SimNode(
                PRIMARY,
                node_params(PRIMARY, STANDBY, Preference.PRIMARY, mode, self.timing, checks=checks),
            ),
            STANDBY: SimNode(
                STANDBY,
                node_params(STANDBY, PRIMARY, Preference.STANDBY, mode, self.timing, checks=checks),
            ),
        }
        self.witness = SimWitness(WITNESS) if mode is SafetyMode.WITNESS else None
        hosts = [PRIMARY, STANDBY, WITNESS]
        self.links = {(a, b): Link() for a in hosts for b in hosts if a != b}
        self.fence_ok = True

    # -- scheduling -----------------------------------------------------------

    def at(self, when: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (max(when, self.now), next(self._seq), fn))

    def run_until(self, until: float, stop: Callable[[], bool] | None = None) -> None:
        while self._queue and self._queue[0][0] <= until:
            when, _, fn = heapq.heappop(self._queue)
            self.now = when
            fn()
            if stop is not None and stop():
                return
        self.now = max(self.now, until)

    def log(self, text: str) -> None:
        self.trace.append(f"{self.now:9.4f} {text}")

    # -- nodes -------------------------------------------------------------------

    def start(self, name: str) -> None:
        if name == WITNESS:
            w = self.witness
            assert w is not None
            w.alive = True
            w.core = WitnessCore(
                WITNESS,
                (PRIMARY, STANDBY),
                drift=self.timing.drift,
                margin=self.timing.demote_margin,
                now=w.local(self.now),
                persisted=w.persisted,
            )
            self.log(f"{name} starts")
            return
        n = self.nodes[name]
        n.alive = True
        n.boots += 1
        n.running_phase = None
        n.core = NodeCore(n.params, n.local(self.now), n.persisted, instance=str(n.boots))
        self.log(f"{name} starts (persisted {n.persisted})")
        self.feed(name, Tick())
        self._schedule_checks(n, n.boots)

    def crash(self, name: str) -> None:
        """The host dies: daemon and service; persisted state stays."""
        if name == WITNESS:
            assert self.witness is not None
            self.witness.alive = False
            self.witness.core = None
            self.log(f"{name} crashes")
            return
        n = self.nodes[name]
        n.alive = False
        n.core = None
        n.running_phase = None
        n.timer_gen += 1
        if n.serving:
            n.service[-1].end = self.now
        self.log(f"{name} crashes")

    def feed(self, name: str, event: Event) -> None:
        n = self.nodes[name]
        if not n.alive or n.core is None:
            return
        actions = n.core.handle(event, n.local(self.now))
        for action in actions:
            self._carry_out(n, action)
        n.timer_gen += 1
        gen = n.timer_gen
        wake = n.real(n.core.next_wakeup())
        self.at(wake, lambda: self._tick(n, gen))

    def _tick(self, n: SimNode, gen: int) -> None:
        if gen == n.timer_gen:
            self.feed(n.name, Tick())

    def feed_witness(self, event: Event) -> None:
        w = self.witness
        if w is None or not w.alive or w.core is None:
            return
        for action in w.core.handle(event, w.local(self.now)):
            if isinstance(action, SendAck):
                self.send(WITNESS, action.to, AckReceived(action.ack))
            elif isinstance(action, Persist):
                w.persisted = action.state

    # -- actions ---------------------------------------------------------------------

    def _carry_out(self, n: SimNode, action: Action) -> None:
        peer = n.params.peer
        match action:
            case Record(decision):
                n.decisions.append(decision)
                self.log(f"{n.name} [{decision.kind}] {decision.reason}")
            case Persist(state):
                n.persisted = state
            case SendHeartbeat(hb):
                self.send(n.name, peer, HeartbeatReceived(hb))
                if self.witness is not None:
                    self.send(n.name, WITNESS, HeartbeatReceived(hb))
            case SendAck(to, ack):
                self.send(n.name, to, AckReceived(ack))
            case SendShutdown(req):
                self._command(n, req.request_id, ShutdownRequested(req))
            case ReplyShutdown(reply):
                event = ShutdownAnswered(reply.request_id, reply.outcome, reply.detail)
                self.send(n.name, peer, event)
            case SendTakeover(req):
                self._command(n, req.request_id, TakeoverRequested(req))
            case ReplyTakeover(reply):
                event2 = TakeoverAnswered(reply.request_id, reply.accepted, reply.detail)
                self.send(n.name, peer, event2)
            case RunScripts(phase, _epoch, _reason):
                self._run_scripts(n, phase)
            case CancelScripts():
                self._finish_scripts(n, n.running_phase, ok=False, detail="aborted")
            case _:
                pass

    def _command(self, n: SimNode, request_id: str, event: Event) -> None:
        """A TCP command: refused at once by a crashed daemon on a live link, lost on a cut one."""
        peer = self.nodes[n.params.peer]
        link = self.links[(n.name, peer.name)]
        if link.up and not peer.alive:
            rtt = 2 * self.rng.uniform(*link.delay)
            answer = ShutdownAnswered(request_id, ShutdownOutcome.UNREACHABLE, "connection refused")
            self.at(self.now + rtt, lambda: self.feed(n.name, answer))
            return
        self.send(n.name, peer.name, event)

    def send(self, src: str, dst: str, event: Event) -> None:
        link = self.links[(src, dst)]
        if not link.up or self.rng.random() < link.loss:
            return
        copies = 2 if self.rng.random() < link.duplicate else 1
        for _ in range(copies):
            delay = self.rng.uniform(*link.delay)
            if dst == WITNESS:
                self.at(self.now + delay, lambda ev=event: self.feed_witness(ev))
            else:
                self.at(self.now + delay, lambda ev=event: self.feed(dst, ev))

    # -- scripts and services ----------------------------------------------------------------

    def _run_scripts(self, n: SimNode, phase: ScriptPhase) -> None:
        behaviour = n.scripts.get(phase, ScriptBehaviour())
        n.running_phase = (phase, n.timer_gen)
        token = n.running_phase
        if phase is ScriptPhase.STARTUP and not n.serving:
            n.service.append(Interval(self.now))
            self.log(f"{n.name} service STARTS")
        budget = {
            ScriptPhase.STARTUP: n.params.startup_budget,
            ScriptPhase.SHUTDOWN: n.params.shutdown_budget,
            ScriptPhase.FENCE: n.params.fence_budget,
        }[phase]
        if behaviour.outcome == "hang" or behaviour.duration >= budget:
            # Killed at its timeout, measured on the node's own clock.
            delay, ok, detail = budget / n.rate, False, "timed out (killed)"
        else:
            delay, ok = behaviour.duration, behaviour.outcome == "ok"
            detail = "exit 0" if ok else "exit 1"
        boots = n.boots
        self.at(
            self.now + delay,
            lambda: self._finish_scripts(n, token, ok, detail) if n.boots == boots else None,
        )

    def _finish_scripts(
        self, n: SimNode, token: tuple[ScriptPhase, int] | None, ok: bool, detail: str
    ) -> None:
        if token is None or n.running_phase != token or not n.alive:
            return
        phase = token[0]
        n.running_phase = None
        if phase is ScriptPhase.SHUTDOWN and n.serving:
            n.service[-1].end = self.now
            self.log(f"{n.name} service STOPS")
        if phase is ScriptPhase.FENCE and ok and self.fence_ok:
            self.crash(n.params.peer)
            self.log(f"{n.name} fenced {n.params.peer}")
        self.feed(n.name, ScriptsFinished(phase, ok, detail))

    def _schedule_checks(self, n: SimNode, boots: int) -> None:
        for spec in n.params.checks:
            self.at(self.now + spec.interval, lambda s=spec: self._run_check(n, s, boots))

    def _run_check(self, n: SimNode, spec: CheckSpec, boots: int) -> None:
        if not n.alive or n.boots != boots:
            return
        if spec.scope is CheckScope.LOCAL:
            ok = n.serving
        else:
            peer = self.nodes[n.params.peer]
            link = self.links[(n.name, peer.name)]
            back = self.links[(peer.name, n.name)]
            ok = peer.serving and link.up and back.up and self.rng.random() >= link.loss
        self.feed(n.name, CheckResult(spec.name, ok, "ok" if ok else "no answer"))
        self.at(self.now + spec.interval, lambda: self._run_check(n, spec, boots))

    # -- network faults ---------------------------------------------------------------

    def cut(self, a: str, b: str, up: bool = False) -> None:
        self.links[(a, b)].up = up
        self.links[(b, a)].up = up
        self.log(f"link {a}<->{b} {'up' if up else 'CUT'}")

    def isolate(self, name: str, up: bool = False) -> None:
        for other in (PRIMARY, STANDBY, WITNESS):
            if other != name:
                self.cut(name, other, up)

    # -- observations ---------------------------------------------------------------------

    def state(self, name: str) -> str:
        n = self.nodes[name]
        return "down" if n.core is None else n.core.state.value

    def overlap(self) -> float:
        """Total time both nodes' services ran at once."""
        a, b = self.nodes[PRIMARY].service, self.nodes[STANDBY].service
        total = 0.0
        for x in a:
            for y in b:
                lo = max(x.start, y.start)
                hi = min(
                    x.end if x.end is not None else self.now,
                    y.end if y.end is not None else self.now,
                )
                total += max(0.0, hi - lo)
        return total
