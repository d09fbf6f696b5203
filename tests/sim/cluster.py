"""A deterministic cluster: the real `core` of two nodes and a witness, driven by
a virtual clock and a simulated network.

Everything that would be I/O in the daemon happens here as scheduled events:
message delivery (with per-direction delay, loss, duplication, cuts), script
phases (with durations, failures, hangs killed at their timeout on the node's
own clock), crashes and restarts (persisted state kept; the witness may lose its
disk), per-host clock rates, stalls of a daemon's event loop.

Services are modelled directly: a node's service runs from the first startup
script until its last shutdown (or demote) script has finished, or until its host
crashes (a fence that succeeds powers the target off: it crashes). A shutdown
cancelled on the way (the lease ran low, see `NodeCore.escalate_at`) leaves the
service running: only the demote scripts that follow stop it. A service can also
break (its checks fail) while it keeps running, until the next startup.

Times: `Cluster.now` is real (virtual) time; each host has a clock
`local = offset + rate * now` with its own rate, and the cores only ever see
their host's clock, never decreasing.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from failoverd.core.actions import (
    CancelScripts,
    OperatorAnswer,
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
    Stalled,
    TakeoverAnswered,
    TakeoverRequested,
    Tick,
)
from failoverd.core.node import NodeCore
from failoverd.core.params import CheckSpec, NodeParams, Timing
from failoverd.core.records import Decision, PersistedState
from failoverd.core.types import (
    MAYBE_SERVING,
    CheckScope,
    NodeState,
    Preference,
    SafetyMode,
    ScriptPhase,
    ShutdownOutcome,
)
from failoverd.core.witness import WitnessCore
from failoverd.replay import ReplayWindow
from failoverd.scripts import ABORTED

PRIMARY, STANDBY, WITNESS = "cfg1", "cfg2", "wit"
HOSTS = (PRIMARY, STANDBY, WITNESS)
NODES = (PRIMARY, STANDBY)


def other(name: str) -> str:
    """The other node of the pair."""
    return STANDBY if name == PRIMARY else PRIMARY


@dataclass
class Link:
    """One direction of a link. Delays are drawn uniformly from `delay` (reordering
    when the range is wider than the gap between two messages)."""

    delay: tuple[float, float] = (0.001, 0.005)
    loss: float = 0.0
    duplicate: float = 0.0
    up: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.delay[0] <= self.delay[1]:
            raise ValueError(f"a link's delay range must be 0 <= lo <= hi, not {self.delay}")

    def __str__(self) -> str:
        lo, hi = self.delay
        state = "up" if self.up else "CUT"
        return (
            f"{state} delay {lo * 1000:.1f}-{hi * 1000:.1f}ms loss {self.loss:.0%} "
            f"dup {self.duplicate:.0%}"
        )


@dataclass(frozen=True)
class ScriptBehaviour:
    """How a phase's scripts behave: run `duration` (real seconds), then succeed or
    fail; or hang. Both a hang and a duration past the phase's budget end when the
    daemon kills them at the budget, measured on its own clock.

    A fence that reports success has powered its target off (the fence is honest);
    `powers_off` says whether a *failed* fence had powered it off nevertheless.
    """

    duration: float = 0.05
    outcome: str = "ok"  # ok | fail | hang
    powers_off: bool = False

    def __str__(self) -> str:
        text = (
            self.outcome if self.outcome == "hang" else f"{self.outcome} after {self.duration:.2f}s"
        )
        return text + (" (powers off)" if self.powers_off else "")


@dataclass
class Interval:
    start: float
    end: float | None = None


@dataclass
class Budgets:
    """The sums of the script timeouts of each phase (demote: None, no demote scripts)."""

    startup: float = 1.0
    shutdown: float = 1.0
    fence: float = 1.0
    demote: float | None = None


@dataclass
class Host:
    """What every simulated host has: a clock of its own and a daemon that may be down."""

    name: str
    rate: float = 1.0
    offset: float = 0.0
    alive: bool = True
    boots: int = 0
    last_local: float = float("-inf")
    persisted: PersistedState | None = None
    # The wire: frames sent in this boot, and the replay windows of the senders heard.
    frames: int = 0
    windows: dict[str, ReplayWindow] = field(default_factory=dict)

    def local(self, t: float) -> float:
        return self.offset + self.rate * t

    def real(self, local: float) -> float:
        return (local - self.offset) / self.rate

    def clock(self, t: float) -> float:
        """The local time to give the core: never earlier than the previous one."""
        local = self.offset + self.rate * t
        if local < self.last_local:
            local = self.last_local
        self.last_local = local
        return local


@dataclass
class SimNode(Host):
    params: NodeParams | None = None
    core: NodeCore | None = None
    service: list[Interval] = field(default_factory=list)
    service_broken: bool = False
    scripts: dict[ScriptPhase, ScriptBehaviour] = field(default_factory=dict)
    running: tuple[ScriptPhase, int] | None = None
    wake_local: float | None = None
    timer_gen: int = 0
    frozen_until: float | None = None
    deferred: list[Event] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    # (real time, from, to) of every transition, for the invariants.
    transitions: list[tuple[float, NodeState, NodeState]] = field(default_factory=list)

    @property
    def p(self) -> NodeParams:
        assert self.params is not None
        return self.params

    @property
    def serving(self) -> bool:
        return bool(self.service) and self.service[-1].end is None


@dataclass
class SimWitness(Host):
    core: WitnessCore | None = None


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
    preference: Preference,
    mode: SafetyMode,
    timing: Timing,
    *,
    checks: tuple[CheckSpec, ...] = (),
    budgets: Budgets | None = None,
) -> NodeParams:
    b = budgets or Budgets()
    return NodeParams(
        name=name,
        peer=other(name),
        preference=preference,
        mode=mode,
        witness=WITNESS if mode is SafetyMode.WITNESS else None,
        timing=timing,
        startup_budget=b.startup,
        shutdown_budget=b.shutdown,
        fence_budget=b.fence,
        auto_failback=False,
        checks=checks,
        demote_budget=b.demote,
    )


POP3_LOCAL = CheckSpec("pop3", CheckScope.LOCAL, interval=0.5, timeout=0.3, rise=1, fall=2)
POP3_REMOTE = CheckSpec("pop3-peer", CheckScope.REMOTE, interval=0.5, timeout=0.3, rise=1, fall=3)

# How long killing a cancelled script phase takes, at most (it reports ABORTED).
KILL_DELAY = 0.01
# The phases whose end stops the node's service.
STOPS = (ScriptPhase.SHUTDOWN, ScriptPhase.DEMOTE)


class Cluster:
    def __init__(
        self,
        mode: SafetyMode = SafetyMode.WITNESS,
        timing: Timing | None = None,
        seed: int | str = 0,
        checks: tuple[CheckSpec, ...] = (POP3_LOCAL, POP3_REMOTE),
        *,
        budgets: Budgets | None = None,
        tracing: bool = True,
    ) -> None:
        self.mode = mode
        self.timing = timing or default_timing()
        self.budgets = budgets or Budgets()
        self.rng = random.Random(seed)
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self._script_ids = itertools.count()
        self.tracing = tracing
        self.trace: list[str] = []
        self.script_overlaps: list[str] = []
        """Script phases a core started while another of its node's phases still ran."""
        self.nodes = {
            name: SimNode(
                name,
                alive=False,
                params=node_params(
                    name, pref, mode, self.timing, checks=checks, budgets=self.budgets
                ),
            )
            for name, pref in ((PRIMARY, Preference.PRIMARY), (STANDBY, Preference.STANDBY))
        }
        self.witness = SimWitness(WITNESS, alive=False)
        self.links = {(a, b): Link() for a in HOSTS for b in HOSTS if a != b}
        self._carry: dict[type, Callable[[SimNode, Any], None]] = {
            Record: self._record,
            Persist: self._persist,
            SendHeartbeat: self._send_heartbeat,
            SendAck: self._send_ack,
            SendShutdown: self._send_shutdown,
            ReplyShutdown: self._reply_shutdown,
            SendTakeover: self._send_takeover,
            ReplyTakeover: self._reply_takeover,
            RunScripts: self._run_scripts,
            CancelScripts: self._cancel_scripts,
            OperatorAnswer: self._operator_answer,
        }

    # -- scheduling -----------------------------------------------------------

    def at(self, when: float, fn: Callable[..., None], *args: Any) -> None:
        now = self.now  # (never earlier than now; as max(when, now), without the call)
        heapq.heappush(self._queue, (now if now > when else when, next(self._seq), fn, args))

    def run_until(self, until: float, stop: Callable[[], bool] | None = None) -> None:
        queue = self._queue
        pop = heapq.heappop
        while queue and queue[0][0] <= until:
            when, _, fn, args = pop(queue)
            self.now = when
            fn(*args)
            if stop is not None and stop():
                return
        self.now = max(self.now, until)

    def log(self, text: str) -> None:
        if self.tracing:
            self.trace.append(f"{self.now:9.4f} {text}")

    # -- hosts -------------------------------------------------------------------

    def start(self, name: str, *, wipe: bool = False) -> None:
        """Power a host on (a no-op if it is up). `wipe`: the witness lost its disk."""
        if name == WITNESS:
            w = self.witness
            if w.alive:
                return
            if wipe:
                w.persisted = None
            w.alive = True
            self._boot(w)
            w.core = WitnessCore(
                WITNESS,
                NODES,
                drift=self.timing.drift,
                margin=self.timing.demote_margin,
                now=w.clock(self.now),
                persisted=w.persisted,
            )
            self.log(f"{name} starts{' with an empty disk' if wipe else ''}")
            return
        n = self.nodes[name]
        if n.alive:
            return
        n.alive = True
        self._boot(n)
        n.running = None
        n.wake_local = None
        n.frozen_until = None
        n.deferred.clear()
        n.core = NodeCore(n.p, n.clock(self.now), n.persisted, instance=str(n.boots))
        self.log(f"{name} starts (persisted {n.persisted})")
        self.feed(name, Tick())
        for spec in n.p.checks:
            self.at(self.now + spec.interval, self._run_check, n, spec, n.boots)

    def _boot(self, host: Host) -> None:
        host.boots += 1
        host.frames = 0
        host.windows.clear()

    def crash(self, name: str) -> None:
        """The host dies: daemon and service; its persisted state stays."""
        if name == WITNESS:
            if self.witness.alive:
                self.witness.alive = False
                self.witness.core = None
                self.log(f"{name} crashes")
            return
        n = self.nodes[name]
        if not n.alive:
            return
        n.alive = False
        n.core = None
        n.running = None
        n.timer_gen += 1
        if n.serving:
            n.service[-1].end = self.now
            self.log(f"{name} service STOPS (host down)")
        self.log(f"{name} crashes")

    def set_rate(self, name: str, rate: float) -> None:
        """Change a host's clock rate from now on; its clock stays continuous."""
        host: Host = self.witness if name == WITNESS else self.nodes[name]
        host.offset = host.local(self.now) - rate * self.now
        host.rate = rate
        self.log(f"{name} clock rate {rate:.4f}")
        if name != WITNESS:
            self.nodes[name].wake_local = None  # its timer's real time moved
            self.feed(name, Tick())

    def stall(self, name: str, seconds: float) -> None:
        """Freeze a node's daemon (SIGSTOP, VM pause) for `seconds` of real time.

        Only while it runs no service: a frozen daemon cannot stop a running
        service in time, which is outside the model (there /health, bound to the
        lease, is what protects)."""
        n = self.nodes[name]
        if not n.alive or n.core is None or n.frozen_until is not None:
            return
        if n.serving or n.core.state in MAYBE_SERVING:
            self.log(f"{name} stall skipped: it may be serving (outside the model)")
            return
        n.frozen_until = self.now + seconds
        self.log(f"{name} daemon STALLS for {seconds:.2f}s")
        self.at(n.frozen_until, self._thaw, n, n.boots, n.local(self.now))

    def _thaw(self, n: SimNode, boots: int, frozen_at: float) -> None:
        if n.boots != boots or not n.alive:
            return
        n.frozen_until = None
        n.wake_local = None  # its timer fired while it was frozen
        pending, n.deferred = n.deferred, []
        self.log(f"{n.name} daemon resumes")
        # Like the runtime: the first event after a long gap is preceded by Stalled.
        self.feed(n.name, Stalled(n.local(self.now) - frozen_at))
        for event in pending:
            self.feed(n.name, event)

    def break_service(self, name: str) -> None:
        """The node's service stops answering (its checks fail) but keeps running."""
        n = self.nodes[name]
        if n.serving and not n.service_broken:
            n.service_broken = True
            self.log(f"{name} service BREAKS (checks fail; still running)")

    # -- feeding the cores ------------------------------------------------------------

    def feed(self, name: str, event: Event, not_before: float | None = None) -> None:
        n = self.nodes[name]
        core = n.core
        if core is None:
            return
        if n.frozen_until is not None:
            if not isinstance(event, Tick):
                n.deferred.append(event)
            return
        local = n.offset + n.rate * self.now  # n.clock(self.now), inlined
        if local < n.last_local:
            local = n.last_local
        if not_before is not None and local < not_before:
            local = not_before
        n.last_local = local
        carry = self._carry
        for action in core.handle(event, local):
            carry[type(action)](n, action)
        wake = core.next_wakeup()
        if wake != n.wake_local:
            n.wake_local = wake
            n.timer_gen += 1
            self.at(n.real(wake), self._tick, n, n.timer_gen, wake)

    def _tick(self, n: SimNode, gen: int, wake: float) -> None:
        if gen == n.timer_gen:
            self.feed(n.name, Tick(), not_before=wake)

    def feed_witness(self, event: Event) -> None:
        w = self.witness
        if w.core is None:
            return
        for action in w.core.handle(event, w.clock(self.now)):
            if isinstance(action, SendAck):
                self.send(WITNESS, action.to, AckReceived(action.ack))
            elif isinstance(action, Persist):
                w.persisted = action.state
            elif isinstance(action, Record):
                self.log(f"{WITNESS} [{action.decision.kind}] {action.decision.reason}")

    # -- actions ---------------------------------------------------------------------

    def _record(self, n: SimNode, action: Record) -> None:
        d = action.decision
        n.decisions.append(d)
        if d.from_state is not None and d.to_state is not None:
            n.transitions.append((self.now, d.from_state, d.to_state))
        if self.tracing:
            self.log(f"{n.name} [{d.kind}] {d.reason}")

    def _persist(self, n: SimNode, action: Persist) -> None:
        n.persisted = action.state

    def _send_heartbeat(self, n: SimNode, action: SendHeartbeat) -> None:
        event = HeartbeatReceived(action.heartbeat)
        self.send(n.name, n.p.peer, event)
        if self.mode is SafetyMode.WITNESS:
            self.send(n.name, WITNESS, event)

    def _send_ack(self, n: SimNode, action: SendAck) -> None:
        self.send(n.name, action.to, AckReceived(action.ack))

    def _send_shutdown(self, n: SimNode, action: SendShutdown) -> None:
        req = action.request
        self.log(f"{n.name} -> {n.p.peer}: SHUTDOWN_YOUR_SERVICE {req.request_id}")
        self._command(n, req.request_id, ShutdownRequested(req))

    def _reply_shutdown(self, n: SimNode, action: ReplyShutdown) -> None:
        r = action.reply
        self.log(f"{n.name} -> {n.p.peer}: {r.outcome.value} {r.request_id}")
        self.send_command(n.name, n.p.peer, ShutdownAnswered(r.request_id, r.outcome, r.detail))

    def _send_takeover(self, n: SimNode, action: SendTakeover) -> None:
        self._command(n, action.request.request_id, TakeoverRequested(action.request))

    def _reply_takeover(self, n: SimNode, action: ReplyTakeover) -> None:
        r = action.reply
        self.send_command(n.name, n.p.peer, TakeoverAnswered(r.request_id, r.accepted, r.detail))

    def _operator_answer(self, n: SimNode, action: OperatorAnswer) -> None:
        self.log(f"{n.name} operator answer: {action.message}")

    # -- the network ---------------------------------------------------------------

    def _frame(self, src: str) -> tuple[str, int, int]:
        """Who sent a frame, in which boot, with which counter (`failoverd.wire`)."""
        host: Host = self.witness if src == WITNESS else self.nodes[src]
        host.frames += 1
        return src, host.boots, host.frames

    def _deliver(self, dst: str, event: Event, frame: tuple[str, int, int]) -> None:
        """The receiver's wire drops replays (duplicates, older boots), as the daemon's
        does with `failoverd.replay.ReplayWindow`; reordered frames get through."""
        host: Host = self.witness if dst == WITNESS else self.nodes[dst]
        if not host.alive:
            return
        sender, boot, counter = frame
        window = host.windows.get(sender)
        if window is None:
            window = host.windows[sender] = ReplayWindow()
        if window.check(boot, counter) is not None:
            return
        window.record(boot, counter)
        if dst == WITNESS:
            self.feed_witness(event)
        else:
            self.feed(dst, event)

    def send(self, src: str, dst: str, event: Event) -> None:
        """A datagram: lost, duplicated and delayed as the link says."""
        link = self.links[(src, dst)]
        rng = self.rng
        if not link.up or (link.loss and rng.random() < link.loss):
            return
        args = (dst, event, self._frame(src))
        lo, hi = link.delay
        # As self.at(self.now + rng.uniform(lo, hi), ...), inlined: the same formula,
        # the same single draw (delays are never negative: no need for max(when, now)).
        now, queue, seq, deliver = self.now, self._queue, self._seq, self._deliver
        heapq.heappush(queue, (now + (lo + (hi - lo) * rng.random()), next(seq), deliver, args))
        if link.duplicate and rng.random() < link.duplicate:
            heapq.heappush(queue, (now + (lo + (hi - lo) * rng.random()), next(seq), deliver, args))

    def send_command(self, src: str, dst: str, event: Event) -> None:
        """Over TCP: needs both directions; never duplicated; loss stands for a
        connection that broke (the requester's own timeout then decides)."""
        link = self.links[(src, dst)]
        if not (link.up and self.links[(dst, src)].up):
            return
        if link.loss and self.rng.random() < link.loss:
            return
        delay = self.rng.uniform(*link.delay)
        self.at(self.now + delay, self._deliver, dst, event, self._frame(src))

    def _command(self, n: SimNode, request_id: str, event: Event) -> None:
        """A command is refused at once by a crashed daemon on a live link."""
        peer = self.nodes[n.p.peer]
        link = self.links[(n.name, peer.name)]
        if link.up and self.links[(peer.name, n.name)].up and not peer.alive:
            rtt = 2 * self.rng.uniform(*link.delay)
            answer = ShutdownAnswered(request_id, ShutdownOutcome.UNREACHABLE, "connection refused")
            self.at(self.now + rtt, self.feed, n.name, answer)
            return
        self.send_command(n.name, peer.name, event)

    def cut(self, a: str, b: str, up: bool = False) -> None:
        """Both directions between `a` and `b`."""
        self.links[(a, b)].up = up
        self.links[(b, a)].up = up
        self.log(f"link {a}<->{b} {'up' if up else 'CUT'}")

    def cut_one(self, src: str, dst: str, up: bool = False) -> None:
        self.links[(src, dst)].up = up
        self.log(f"link {src}->{dst} {'up' if up else 'CUT'}")

    def isolate(self, name: str, up: bool = False) -> None:
        for host in HOSTS:
            if host != name:
                self.cut(name, host, up)

    def set_link(self, src: str, dst: str, link: Link) -> None:
        self.links[(src, dst)] = link
        self.log(f"link {src}->{dst}: {link}")

    # -- scripts and services ----------------------------------------------------------------

    def _budget(self, n: SimNode, phase: ScriptPhase) -> float:
        p = n.p
        if phase is ScriptPhase.STARTUP:
            return p.startup_budget
        if phase is ScriptPhase.SHUTDOWN:
            return p.shutdown_budget
        if phase is ScriptPhase.DEMOTE:
            assert p.demote_budget is not None, "demote scripts run without a demote budget"
            return p.demote_budget
        return p.fence_budget

    def _run_scripts(self, n: SimNode, action: RunScripts) -> None:
        phase = action.phase
        behaviour = n.scripts.get(phase) or ScriptBehaviour()
        if n.running is not None:  # a script cannot be called back: both would run
            self.script_overlaps.append(
                f"{n.name} started its {phase} scripts at {self.now:.4f}s while its "
                f"{n.running[0]} scripts still ran"
            )
        token = (phase, next(self._script_ids))
        n.running = token
        if phase is ScriptPhase.STARTUP:
            n.service_broken = False
            if not n.serving:
                n.service.append(Interval(self.now))
                self.log(f"{n.name} service STARTS")
        budget = self._budget(n, phase)
        if behaviour.outcome == "hang" or behaviour.duration * n.rate >= budget:
            # Killed at its timeout, measured on the node's own clock.
            delay, ok, detail = budget / n.rate, False, "timed out (killed)"
        else:
            delay, ok = behaviour.duration, behaviour.outcome == "ok"
            detail = "exit 0" if ok else "exit 1"
        self.log(f"{n.name} runs {phase} scripts: {behaviour}")
        self.at(self.now + delay, self._finish_scripts, n, token, ok, detail, n.boots)

    def _cancel_scripts(self, n: SimNode, action: CancelScripts) -> None:
        token = n.running
        if token is not None:
            delay = self.rng.uniform(0, KILL_DELAY)
            self.at(self.now + delay, self._finish_scripts, n, token, False, ABORTED, n.boots)

    def _finish_scripts(
        self, n: SimNode, token: tuple[ScriptPhase, int], ok: bool, detail: str, boots: int
    ) -> None:
        if n.running != token or n.boots != boots or not n.alive:
            return
        phase = token[0]
        n.running = None
        if phase in STOPS and n.serving:
            if detail == ABORTED:
                self.log(f"{n.name} service still runs ({phase} cancelled)")
            else:
                n.service[-1].end = self.now
                self.log(f"{n.name} service STOPS")
        if phase is ScriptPhase.FENCE:
            behaviour = n.scripts.get(phase) or ScriptBehaviour()
            if ok or behaviour.powers_off:
                self.log(f"{n.name} fence powers {n.p.peer} off")
                self.crash(n.p.peer)
        self.feed(n.name, ScriptsFinished(phase, ok, detail))

    def _run_check(self, n: SimNode, spec: CheckSpec, boots: int) -> None:
        if not n.alive or n.boots != boots:
            return
        if spec.scope is CheckScope.LOCAL:
            ok = n.serving and not n.service_broken
        else:
            peer = self.nodes[n.p.peer]
            there, back = self.links[(n.name, peer.name)], self.links[(peer.name, n.name)]
            ok = (
                peer.serving
                and not peer.service_broken
                and there.up
                and back.up
                and (not there.loss or self.rng.random() >= there.loss)
                and (not back.loss or self.rng.random() >= back.loss)
            )
        self.feed(n.name, CheckResult(spec.name, ok, "ok" if ok else "no answer"))
        self.at(self.now + spec.interval / n.rate, self._run_check, n, spec, boots)

    # -- observations ---------------------------------------------------------------------

    def state(self, name: str) -> str:
        n = self.nodes[name]
        return "down" if n.core is None else n.core.state.value

    def overlaps(self) -> list[tuple[float, float]]:
        """Every stretch of time both nodes' services ran at once, as (start, end)."""
        a, b = self.nodes[PRIMARY].service, self.nodes[STANDBY].service
        found = []
        for x in a:
            for y in b:
                lo = max(x.start, y.start)
                hi = min(
                    x.end if x.end is not None else self.now,
                    y.end if y.end is not None else self.now,
                )
                if hi > lo:
                    found.append((lo, hi))
        return sorted(found)

    def overlap(self) -> float:
        """Total time both nodes' services ran at once."""
        return sum(hi - lo for lo, hi in self.overlaps())
