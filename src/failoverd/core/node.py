"""A node's decisions: when to take over, when to let go, and why.

`NodeCore.handle(event, now)` returns the actions to carry out, in order;
`next_wakeup()` says when to call again with `Tick()` at the latest. Every
state change goes through the transition table and carries a reason in plain
words (a `Record` action).
"""

from dataclasses import dataclass, field
from enum import StrEnum

from failoverd.core import transitions
from failoverd.core.actions import (
    Action,
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
from failoverd.core.checkstate import CheckSet
from failoverd.core.events import (
    AckReceived,
    CheckResult,
    Departing,
    Event,
    HeartbeatReceived,
    Operation,
    OperatorCommand,
    ScriptsFinished,
    ShutdownAnswered,
    ShutdownRequested,
    Stalled,
    TakeoverAnswered,
    TakeoverRequested,
    Tick,
)
from failoverd.core.lease import Lease
from failoverd.core.messages import (
    Ack,
    Heartbeat,
    PeerView,
    ShutdownReply,
    ShutdownRequest,
    TakeoverReply,
    TakeoverRequest,
)
from failoverd.core.params import NodeParams
from failoverd.core.records import Decision, PersistedState
from failoverd.core.types import (
    MAYBE_SERVING,
    Cause,
    CheckScope,
    NodeState,
    Preference,
    SafetyMode,
    ScriptPhase,
    ShutdownOutcome,
)
from failoverd.core.voter import Voter

S = NodeState


class Phase(StrEnum):
    """Where a takeover stands."""

    ASKING_PEER = "asking_peer"
    FENCING = "fencing"
    ACQUIRING_LEASE = "acquiring_lease"
    STARTING_SERVICES = "starting_services"


@dataclass(slots=True)
class Takeover:
    reason: str
    planned: bool
    cause: Cause
    candidate_epoch: int
    request_id: str | None = None
    outcome: ShutdownOutcome | None = None
    outcome_detail: str = ""
    deadline: float = 0.0
    fencing: bool = False
    fenced: bool = False
    next_fence_at: float = 0.0
    phase: Phase = Phase.ASKING_PEER


@dataclass(slots=True)
class Release:
    reason: str
    then: NodeState
    cause: Cause
    pending_replies: list[str] = field(default_factory=list)
    # The lease ran low during the graceful shutdown: it was cancelled, and the demote
    # scripts' result, not the shutdown's, ends the release.
    escalated: bool = False


@dataclass(frozen=True, slots=True)
class WitnessOpinion:
    view: PeerView
    received_at: float


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """A snapshot for /status, `failoverd status` and `explain`."""

    name: str
    state: NodeState
    preference: Preference
    mode: SafetyMode
    epoch: int
    maintenance: bool
    healthy: bool
    serve_until: float | None
    lease_until: float | None
    lease_voters: tuple[str, ...]
    takeover_phase: str | None
    peer_name: str
    peer_state: NodeState | None
    peer_epoch: int | None
    peer_age: float | None
    peer_checks_ok: bool | None
    peer_maintenance: bool | None
    witness_view: PeerView | None
    local_checks: tuple[tuple[str, bool | None, str], ...]
    remote_checks: tuple[tuple[str, bool | None, str], ...]
    last_transition: str


_NEVER = float("inf")
# The phases that stop this node's service: their result ends a release.
_STOPS = (ScriptPhase.SHUTDOWN, ScriptPhase.DEMOTE)


def outranks(a: Heartbeat | NodeParams, b: Heartbeat | NodeParams) -> bool:
    """Whether `a` wins a tie against `b`: the preferred primary, then the lower name."""
    name_a = a.sender if isinstance(a, Heartbeat) else a.name
    name_b = b.sender if isinstance(b, Heartbeat) else b.name
    key_a = (a.preference is not Preference.PRIMARY, name_a)
    key_b = (b.preference is not Preference.PRIMARY, name_b)
    return key_a < key_b


class NodeCore:
    def __init__(
        self, params: NodeParams, now: float, persisted: PersistedState | None, instance: str
    ) -> None:
        self.p = params
        self.t = params.timing
        self.instance = instance
        self.state = S.STARTING
        self.epoch = persisted.epoch if persisted else 0
        self.released_epoch = persisted.released_epoch if persisted else 0
        self.maintenance = persisted.maintenance if persisted else False
        self.last_transition = persisted.last_transition if persisted else ""
        self._restored_from = persisted.state if persisted else None
        self.started_at = now
        self.local = CheckSet(params.checks_of(CheckScope.LOCAL))
        self.remote = CheckSet(params.checks_of(CheckScope.REMOTE))
        self.voter = Voter(self.t.drift, self.t.demote_margin, booted_at=now)
        self.lease = Lease(params.voters, self.t.lease_time)
        self.peer_hb: Heartbeat | None = None
        # The peer's last heartbeat when its daemon was stopped by an operator.
        self.peer_departed: Heartbeat | None = None
        # The last shutdown failed: the service may still run (witness mode keeps the lease).
        self.unclean = False
        self.peer_heard_at: float | None = None
        self.witness: WitnessOpinion | None = None
        self.takeover: Takeover | None = None
        # When this node last confirmed a SHUTDOWN_YOUR_SERVICE of its peer.
        self._yielded_at: float | None = None
        self.release: Release | None = None
        self.scripts_running: ScriptPhase | None = None
        self._release_after_startup: str | None = None
        self._pending_after_startup: list[str] = []
        self._release_cause: Cause | None = None
        self._next_heartbeat = now
        self._standby_since = now
        self._holds: set[str] = set()
        self._retry_at = now  # after a refusal, no new takeover before this
        self._seq = 0
        self._now = now
        self._out: list[Action] = []

    # -- the interface -------------------------------------------------------

    def handle(self, event: Event, now: float) -> list[Action]:
        self._now = now
        self._out = []
        match event:
            case Tick():
                pass
            case HeartbeatReceived(hb):
                self._on_heartbeat(hb)
            case AckReceived(ack):
                self._on_ack(ack)
            case ShutdownRequested(req):
                self._on_shutdown_request(req)
            case ShutdownAnswered(request_id, outcome, detail):
                self._on_shutdown_answer(request_id, outcome, detail)
            case TakeoverRequested(req):
                self._on_takeover_request(req)
            case TakeoverAnswered(request_id, accepted, detail):
                self._decide(
                    "operator",
                    f"{self.p.peer} {'accepted' if accepted else 'refused'} to take over"
                    f"{'' if accepted else ': ' + detail}",
                )
            case CheckResult(name, ok, detail):
                self._on_check(name, ok, detail)
            case ScriptsFinished(phase, ok, detail):
                self._on_scripts_finished(phase, ok, detail)
            case Stalled(seconds):
                self._on_stall(seconds)
            case Departing():
                self._on_departing()
                return self._out
            case OperatorCommand(op):
                self._on_operator(op)
        self._evaluate()
        if self._now >= self._next_heartbeat:  # (most events come between heartbeats)
            self._maybe_heartbeat()
        return self._out

    def next_wakeup(self) -> float:
        # The earliest deadline still ahead. Deadlines already past were acted on in
        # the call that just returned; the next heartbeat is always in the future.
        # (Called after every event: written out rather than as min() over a list.)
        now, state = self._now, self.state
        wake = _NEVER
        t = self._next_heartbeat
        if now < t:
            wake = t
        if state is S.STARTING:
            t = self.started_at + self.t.init_dead
            if now < t < wake:
                wake = t
        elif state is S.STANDBY:
            if self.peer_heard_at is not None:
                t = self.peer_heard_at + self.t.dead_time
                if now < t < wake:
                    wake = t
            t = self._retry_at
            if now < t < wake:
                wake = t
        to = self.takeover
        if to is not None:
            t = to.deadline
            if now < t < wake:
                wake = t
            t = to.next_fence_at
            if t and now < t < wake:
                wake = t
        t_demote = self.demote_at()
        if t_demote is not None and now < t_demote < wake:
            wake = t_demote
        if state is S.RELEASING:
            t_escalate = self.escalate_at()
            if t_escalate is not None and now < t_escalate < wake:
                wake = t_escalate
        if wake == _NEVER:
            raise ValueError(f"no deadline after {now}")
        return wake

    def reconfigure(self, params: NodeParams) -> None:
        """Take new timers, checks and budgets (SIGHUP); names and the mode stay as they are."""
        self.p, self.t = params, params.timing
        for scope, checks in ((CheckScope.LOCAL, self.local), (CheckScope.REMOTE, self.remote)):
            kept = checks.trackers
            checks.trackers = {}
            for spec in params.checks_of(scope):
                tracker = kept.get(spec.name)
                checks.trackers[spec.name] = (
                    tracker
                    if tracker and tracker.spec == spec
                    else (CheckSet((spec,)).trackers[spec.name])
                )
        self.lease.lease_time = self.t.lease_time
        self.voter.drift, self.voter.margin = self.t.drift, self.t.demote_margin

    # -- status --------------------------------------------------------------

    @property
    def witness_mode(self) -> bool:
        return bool(self.p.voters)

    def serve_until(self) -> float | None:
        """Until when /health may answer 200 (None: not at all). Infinite outside witness mode.

        In witness mode: until the node must begin to demote, not until its lease
        ends. A daemon frozen past that point (SIGSTOP, a paused VM) demotes as
        soon as it runs again; its API thread, reading this published value,
        must not first answer 200 and bring the load balancer back to it.
        """
        if self.state is not S.ACTIVE or not self.local.ok:
            return None
        if not self.witness_mode:
            return float("inf")
        return self.demote_at()

    def demote_at(self) -> float | None:
        """When the holder must begin its shutdown so that it ends before the lease does."""
        state = self.state
        if state is S.TAKING_OVER:
            if self.takeover is None or self.takeover.phase is not Phase.STARTING_SERVICES:
                return None
        elif state is not S.ACTIVE:
            return None
        if not self.p.voters:  # not in witness mode
            return None
        end = self.lease.valid_until()
        if end is None:
            return self._now
        return end - self.p.stop_budget - self.t.demote_margin

    def escalate_at(self) -> float | None:
        """When a graceful shutdown in progress gives way to the demote scripts (None: not
        while none runs, or without demote scripts or a lease).

        With demote scripts the lease is sized for them, not for the shutdown scripts, so
        a graceful release (asked for by the peer, failing checks, a switchover, a higher
        epoch) may outlast the lease if the node is cut off on the way. It keeps renewing,
        and if it cannot, it cancels the shutdown and runs the demote scripts in time.
        """
        if self.state is not S.RELEASING or self.scripts_running is not ScriptPhase.SHUTDOWN:
            return None
        rel = self.release
        if rel is None or rel.escalated:
            return None
        return self._graceful_until()

    def _graceful_until(self) -> float | None:
        """Until when a graceful shutdown may run: the demote scripts, started up to a
        heartbeat later (cancelling the shutdown takes a moment), still end demote_margin
        before the lease does. None: no demote scripts, or no lease known."""
        budget = self.p.demote_budget
        end = self.lease.valid_until()
        if budget is None or end is None:
            return None
        return end - budget - self.t.demote_margin - self.t.heartbeat_interval

    def _lease_left(self) -> str:
        end = self.lease.valid_until()
        return "no valid lease" if end is None else f"lease ends in {end - self._now:.2f}s"

    def peer_fresh(self) -> bool:
        return self.peer_heard_at is not None and self._now - self.peer_heard_at < self.t.dead_time

    def status(self) -> NodeStatus:
        hb = self.peer_hb
        return NodeStatus(
            name=self.p.name,
            state=self.state,
            preference=self.p.preference,
            mode=self.p.mode,
            epoch=self.epoch,
            maintenance=self.maintenance,
            healthy=(self.serve_until() or 0.0) > self._now,
            serve_until=self.serve_until(),
            lease_until=self.lease.valid_until() if self.witness_mode else None,
            lease_voters=self.lease.granted_by(self._now) if self.witness_mode else (),
            takeover_phase=self.takeover.phase.value if self.takeover else None,
            peer_name=self.p.peer,
            peer_state=hb.state if hb else None,
            peer_epoch=hb.epoch if hb else None,
            peer_age=self._now - self.peer_heard_at if self.peer_heard_at is not None else None,
            peer_checks_ok=hb.checks_ok if hb else None,
            peer_maintenance=hb.maintenance if hb else None,
            witness_view=self.witness.view if self.witness else None,
            local_checks=tuple((t.spec.name, t.up, t.detail) for t in self.local.trackers.values()),
            remote_checks=tuple(
                (t.spec.name, t.up, t.detail) for t in self.remote.trackers.values()
            ),
            last_transition=self.last_transition,
        )

    # -- helpers -------------------------------------------------------------

    def _emit(self, action: Action) -> None:
        self._out.append(action)

    def _decide(self, kind: str, reason: str, **details: str) -> None:
        self._emit(
            Record(
                Decision(
                    at=self._now,
                    node=self.p.name,
                    kind=kind,
                    reason=reason,
                    epoch=self.epoch,
                    details=tuple(sorted(details.items())),
                )
            )
        )

    def _hold(self, key: str, reason: str) -> None:
        """Record why nothing is done, once per kind of reason and state (numbers change)."""
        if key not in self._holds:
            self._holds.add(key)
            self._decide("hold", reason)

    def _persist(self) -> None:
        self._emit(
            Persist(
                PersistedState(
                    epoch=self.epoch,
                    state=self.state,
                    maintenance=self.maintenance,
                    released_epoch=self.released_epoch,
                    last_transition=self.last_transition,
                )
            )
        )

    def _go(self, target: NodeState, reason: str, cause: Cause | None = None) -> None:
        transitions.check(self.state, target)
        source, self.state = self.state, target
        self.last_transition = f"{source} -> {target}: {reason}"
        self._holds.clear()
        if target is S.STANDBY:
            self._standby_since = self._now
        self._emit(
            Record(
                Decision(
                    at=self._now,
                    node=self.p.name,
                    kind="transition",
                    reason=reason,
                    epoch=self.epoch,
                    from_state=source,
                    to_state=target,
                    details=(("cause", cause.value),) if cause else (),
                )
            )
        )
        self._persist()
        self._next_heartbeat = self._now  # tell the others at once

    def _new_id(self) -> str:
        self._seq += 1
        return f"{self.p.name}-{self.instance}-{self._seq}"

    def _run(self, phase: ScriptPhase, reason: str) -> None:
        self.scripts_running = phase
        self._emit(RunScripts(phase, self.epoch, reason))

    def _known_epoch(self) -> int:
        peer = self.peer_hb.epoch if self.peer_hb else 0
        # An abandoned takeover released its epoch to our own voter: never ask for it again.
        return max(self.epoch, peer, self.voter.max_epoch, self.voter.released(self.p.name))

    # -- the peer --------------------------------------------------------------

    def _on_heartbeat(self, hb: Heartbeat) -> None:
        if hb.sender != self.p.peer:
            return
        if self.peer_hb is not None and hb.sent_at < self.peer_hb.sent_at and self.peer_fresh():
            # Reordered on the way: older than what is known of the peer. (A peer whose
            # host rebooted, its clock started afresh, has been silent for longer.)
            return
        if hb.state is S.ACTIVE and (self.peer_hb is None or self.peer_hb.state is not S.ACTIVE):
            self.remote.reset()  # judge the peer's service afresh from its activation on
        self.peer_hb = hb
        self.peer_heard_at = self._now
        if hb.departing and self.peer_departed is None:
            self._decide(
                "hold",
                f"{hb.sender}'s daemon is stopping and leaves its service {hb.state}: its silence "
                "is no failure; only its remote checks failing would be",
            )
        self.peer_departed = hb if hb.departing else None
        holding = self.state in (S.TAKING_OVER, S.ACTIVE, S.RELEASING)
        if hb.state is S.ACTIVE and hb.epoch > self.epoch and not holding:
            # Remember the highest active epoch; a holder keeps its own, to compare.
            self.epoch = hb.epoch
            self._persist()
        if hb.released_epoch and self.voter.release(hb.sender, hb.released_epoch):
            self._decide("lease", f"{hb.sender} released epoch {hb.released_epoch}: vote freed")
        granted: bool | None = None
        refusal = ""
        if hb.lease_request and self.witness_mode:
            verdict = self.voter.consider(hb.sender, hb.lease_epoch, hb.lease_time, self._now)
            granted, refusal = verdict.granted, verdict.refusal
        self._emit(
            SendAck(
                hb.sender,
                Ack(
                    voter=self.p.name,
                    candidate=hb.sender,
                    lease_epoch=hb.lease_epoch,
                    granted=granted,
                    refusal=refusal,
                    request_sent_at=hb.sent_at,
                    max_epoch=self._known_epoch(),
                    views=(),
                ),
            )
        )

    def _on_ack(self, ack: Ack) -> None:
        if ack.candidate != self.p.name:
            return
        if ack.voter == self.p.witness:
            for view in ack.views:
                if view.node == self.p.peer:
                    self.witness = WitnessOpinion(view, self._now)
        if ack.granted:
            self.lease.grant(ack.voter, ack.lease_epoch, ack.request_sent_at)
        elif ack.granted is False:
            to = self.takeover
            if (
                to is not None
                and to.phase is Phase.ACQUIRING_LEASE
                and ack.max_epoch >= to.candidate_epoch
            ):
                to.candidate_epoch = ack.max_epoch + 1
                self.lease.start(to.candidate_epoch)
            if self.state is S.TAKING_OVER:
                self._hold(f"refused:{ack.voter}", f"{ack.voter} refused its vote: {ack.refusal}")

    def _witness_vouches(self) -> str | None:
        """The witness's word that the peer is alive, active and healthy, if it has one."""
        w = self.witness
        if not self.witness_mode or w is None:
            return None
        age = self._now - w.received_at + w.view.age
        # Relayed with the acks to our own heartbeats, the witness's word is older than
        # its own observation by up to a heartbeat interval and two network delays.
        relay = self.t.heartbeat_interval + 2 * self.t.max_network_delay
        if age >= self.t.dead_time + relay or w.view.state not in MAYBE_SERVING:
            return None
        if not w.view.checks_ok:
            return None
        return (
            f"the witness {self.p.witness} heard {self.p.peer} {age:.2f}s ago, "
            f"{w.view.state} with its checks passing"
        )

    def _peer_is_fine(self) -> bool:
        """The peer is active and nothing (left) says it failed: no reason to take over.

        The witness's word counts only while the peer is not heard directly: its
        view is older than a fresh heartbeat (which may say the peer is releasing).
        """
        hb = self.peer_hb
        if self.peer_fresh() and hb is not None:
            active = hb.state is S.ACTIVE
        else:
            active = self._witness_vouches() is not None
        return active and self._takeover_reason(record=False) is None

    def _peer_serving(self) -> bool:
        return (
            self.peer_fresh() and self.peer_hb is not None and self.peer_hb.state in MAYBE_SERVING
        )

    def _failure_reason(self) -> tuple[str, bool, Cause] | None:
        """Why the peer counts as failed, whether the witness may overrule it, and the cause."""
        hb = self.peer_hb
        gone = self.peer_departed
        if gone is not None and gone.state in MAYBE_SERVING:
            if not self.remote.ok:
                return (
                    f"remote check of {self.p.peer}, whose daemon was stopped: "
                    f"{self.remote.describe_down()}",
                    True,
                    Cause.REMOTE_CHECKS_FAILED,
                )
            return None
        if not self.peer_fresh() or hb is None:
            if self.peer_heard_at is None:
                if self._now < self.started_at + self.t.init_dead:
                    # Not judged yet: a restarted node that released first is in standby early.
                    return None
                return (
                    f"{self.p.peer} not heard since this node started "
                    f"(init_dead {self.t.init_dead:g}s)",
                    True,
                    Cause.PEER_SILENT,
                )
            silent = self._now - self.peer_heard_at
            return (
                f"no heartbeat from {self.p.peer} for {silent:.2f}s "
                f"(dead_time {self.t.dead_time:g}s)",
                True,
                Cause.PEER_SILENT,
            )
        if hb.maintenance:
            return None
        if hb.state is S.FAILED:
            return (
                f"{self.p.peer} is in state failed (its scripts failed)",
                False,
                Cause.PEER_FAILED,
            )
        if hb.state is not S.ACTIVE:
            return None
        if not hb.checks_ok:
            return (
                f"{self.p.peer} reports its own checks failing: {', '.join(hb.failing_checks)}",
                False,
                Cause.PEER_CHECKS_FAILED,
            )
        if not self.remote.ok:
            return (
                f"remote check of {self.p.peer}: {self.remote.describe_down()}",
                True,
                Cause.REMOTE_CHECKS_FAILED,
            )
        return None

    def _takeover_reason(self, record: bool = True) -> tuple[str, bool, Cause] | None:
        """(reason, planned, cause) when this standby should take over now."""
        failure = self._failure_reason()
        if failure is not None:
            reason, overrulable, cause = failure
            vouch = self._witness_vouches() if overrulable else None
            if vouch is not None:
                if record:
                    self._hold(
                        "vouch", f"{reason}, but {vouch}: not failing over (suspect the path)"
                    )
                return None
            return reason, False, cause
        hb = self.peer_hb
        if hb is None or hb.maintenance:
            return None
        if hb.state in (S.STANDBY, S.STARTING) and outranks(self.p, hb):
            if hb.state is S.STARTING:
                return None
            if self._yielded_at is not None and self._now - self._yielded_at < self.t.dead_time:
                # Its request says it is taking over: the "standby" heard may predate it.
                if record:
                    self._hold(
                        "yielded",
                        f"{self.p.peer} asked for the service {self._now - self._yielded_at:.2f}s "
                        f"ago: waiting up to dead_time for its new state before acting as the "
                        f"preferred node",
                    )
                return None
            return (
                f"no node is active and {self.p.name} is the preferred node",
                False,
                Cause.NO_ACTIVE_NODE,
            )
        if (
            self.p.auto_failback
            and hb.state is S.ACTIVE
            and self.p.preference is Preference.PRIMARY
            and hb.preference is Preference.STANDBY
            and self._now - self._standby_since >= self.t.auto_failback_delay
        ):
            return (
                "auto_failback: the preferred primary has been healthy long enough",
                True,
                Cause.FAILBACK,
            )
        return None

    # -- taking over -----------------------------------------------------------

    def _begin_takeover(self, reason: str, planned: bool, cause: Cause) -> None:
        to = Takeover(
            reason=reason, planned=planned, cause=cause, candidate_epoch=self._known_epoch() + 1
        )
        self.takeover = to
        self._go(S.TAKING_OVER, reason, cause)
        # Outside witness mode a heartbeat saying "standby" proves nothing: it may
        # predate the peer's own takeover. Only the peer's answer (or a fence) does.
        if self._peer_serving() or not self.peer_fresh() or not self.witness_mode:
            to.request_id = self._new_id()
            to.deadline = self._now + self.t.shutdown_timeout
            target = self.peer_hb.epoch if self.peer_hb else self.epoch
            self._emit(
                SendShutdown(
                    ShutdownRequest(
                        request_id=to.request_id,
                        sender=self.p.name,
                        target_epoch=max(target, self.epoch),
                        reason=reason,
                        planned=planned,
                    )
                )
            )
            self._decide("command", f"sending SHUTDOWN_YOUR_SERVICE to {self.p.peer}: {reason}")
        else:
            to.outcome = ShutdownOutcome.CONFIRMED
            to.outcome_detail = (
                f"{self.p.peer} reports {self.peer_hb.state if self.peer_hb else '?'}"
            )
        if self.witness_mode:
            to.phase = Phase.ACQUIRING_LEASE
            self.lease.start(to.candidate_epoch)

    def _on_shutdown_answer(self, request_id: str, outcome: ShutdownOutcome, detail: str) -> None:
        to = self.takeover
        if to is None or to.request_id != request_id or to.outcome is not None:
            return
        to.outcome, to.outcome_detail = outcome, detail
        self._decide("command", f"{self.p.peer} answered {outcome.value}: {detail}")

    def _abandon(self, reason: str) -> None:
        # Nothing was started for this epoch: free our own vote at once, or we
        # would refuse the active peer's renewals for a whole vote block.
        if self.takeover is not None:
            self.voter.release(self.p.name, self.takeover.candidate_epoch)
        self.takeover = None
        self.lease.drop()
        self._go(S.STANDBY, reason)

    def _peer_may_obey(self, to: Takeover) -> bool:
        """Whether the peer obeyed our SHUTDOWN_YOUR_SERVICE, or still may.

        Then a heartbeat saying it is active and healthy does not end the
        takeover: it may predate the request. A daemon frozen with the request
        queued sends its old heartbeat first when it wakes, then obeys; giving up
        on that heartbeat would leave both nodes standby. The takeover waits for
        the answer, up to shutdown_timeout, and goes on by the mode's rules.
        A request that reached no address (UNREACHABLE), or that is unanswered
        after shutdown_timeout while the peer is heard healthy, is taken as not
        delivered: then the peer's health decides, as before the request.
        """
        if to.request_id is None or to.outcome is ShutdownOutcome.UNREACHABLE:
            return False
        return to.outcome is not None or self._now < to.deadline

    def _advance_takeover(self) -> None:
        to = self.takeover
        assert to is not None
        if to.phase is Phase.STARTING_SERVICES:
            return
        if to.fencing:
            # The fence cannot be called back: whatever comes now (a late answer, even
            # CONFIRMED or REFUSED; maintenance mode) waits for its result. One phase at
            # a time, and a fence never runs on behind an abandoned takeover.
            return
        if to.outcome is ShutdownOutcome.REFUSED and not to.fenced:
            # Alive, answering and unwilling: it is not failed (and a refusal is never
            # a confirmation). Judge again after a dead_time, on fresh heartbeats.
            self._retry_at = self._now + self.t.dead_time
            self._abandon(f"{self.p.peer} refused: {to.outcome_detail}; takeover abandoned")
            return
        if to.planned:
            if to.outcome in (ShutdownOutcome.FAILED, ShutdownOutcome.UNREACHABLE) or (
                to.outcome is None and self._now >= to.deadline
            ):
                self._abandon(
                    f"planned handover abandoned: {self.p.peer} did not confirm "
                    f"({to.outcome_detail or 'no answer in time'})"
                )
                return
        elif not to.fenced and self._peer_is_fine():
            # (A fenced peer is off, whatever its last heartbeat said.)
            if not self._peer_may_obey(to):
                self._abandon(f"{self.p.peer} is active and healthy after all: takeover abandoned")
                return
            again = f"{self.p.peer} is heard active and healthy again"
            self._hold(
                f"may-obey:{to.outcome}",
                f"{again}, but it may still obey SHUTDOWN_YOUR_SERVICE (the heartbeat may "
                f"predate the request): waiting for its answer, shutdown_timeout "
                f"{self.t.shutdown_timeout:g}s"
                if to.outcome is None
                else f"{again}, but it answered {to.outcome.value}: the heartbeat predates it",
            )
        if self.maintenance:
            self._abandon("maintenance mode: takeover abandoned")
            return
        if self.witness_mode:
            self._advance_witness(to)
        elif self.p.mode is SafetyMode.FENCE:
            self._advance_fence(to)
        elif to.outcome is not None or self._now >= to.deadline:
            how = to.outcome_detail or "no answer within shutdown_timeout"
            self._start_services(f"cooperative mode, {self.p.peer}: {how}")

    def _advance_witness(self, to: Takeover) -> None:
        if to.planned and to.outcome is not ShutdownOutcome.CONFIRMED:
            return
        end = self.lease.valid_until()
        need = self.p.stop_budget + self.t.demote_margin + self.t.heartbeat_interval
        if end is not None and end - self._now > need:
            voters = ", ".join(self.lease.granted_by(self._now))
            to.phase = Phase.STARTING_SERVICES
            self._start_services(f"lease for epoch {to.candidate_epoch} granted by {voters}")

    def _advance_fence(self, to: Takeover) -> None:
        if to.outcome is ShutdownOutcome.CONFIRMED or to.fenced:
            why = "fenced" if to.fenced else f"{self.p.peer} confirmed ({to.outcome_detail})"
            self._start_services(why)
            return
        if self._now < to.next_fence_at:
            return
        if to.outcome is None and self._now < to.deadline:
            return
        to.phase = Phase.FENCING
        to.fencing = True
        why = to.outcome_detail or "no answer within shutdown_timeout"
        self._decide(
            "command", f"fencing {self.p.peer}: SHUTDOWN_YOUR_SERVICE not confirmed ({why})"
        )
        self._run(ScriptPhase.FENCE, f"fence {self.p.peer}: {why}")

    def _start_services(self, why: str) -> None:
        to = self.takeover
        assert to is not None
        to.phase = Phase.STARTING_SERVICES
        # In witness mode the epoch is the one the majority voted for.
        self.epoch = (
            to.candidate_epoch
            if self.witness_mode
            else max(to.candidate_epoch, self._known_epoch() + 1)
        )
        self._persist()  # the epoch is on disk before any startup script runs
        self._decide("takeover", f"starting services at epoch {self.epoch}: {why}")
        self.remote.reset()
        self.local.reset()
        self._run(ScriptPhase.STARTUP, to.reason)

    # -- letting go ------------------------------------------------------------

    def _begin_release(
        self, reason: str, then: NodeState, cause: Cause, reply_to: str | None = None
    ) -> None:
        if self.state is S.RELEASING and self.release is not None:
            if reply_to:
                self.release.pending_replies.append(reply_to)
            return
        if self.scripts_running is ScriptPhase.STARTUP:
            # Stop what is starting first; the release begins when it has ended.
            if reply_to:
                self._pending_after_startup.append(reply_to)
            if self._release_after_startup is None:
                self._release_after_startup = reason
                self._release_cause = cause
                self._emit(CancelScripts())
            return
        self._release(reason, then, cause, [reply_to] if reply_to else [])

    def _release(self, reason: str, then: NodeState, cause: Cause, replies: list[str]) -> None:
        self.release = Release(reason, then, cause, replies)
        self.takeover = None
        self._go(S.RELEASING, reason, cause)
        self._run(self._stop_phase(cause), reason)

    def _stop_phase(self, cause: Cause) -> ScriptPhase:
        """The demote scripts when the lease forces the stop (it was not renewed, or too
        little of it is left for a graceful shutdown); else the shutdown scripts."""
        if self.p.demote_budget is None:
            return ScriptPhase.SHUTDOWN
        if cause is Cause.LEASE_LOST:
            return ScriptPhase.DEMOTE
        until = self._graceful_until()
        if until is None or self._now < until:
            return ScriptPhase.SHUTDOWN
        self._decide(
            "lease",
            f"lease not renewed ({self._lease_left()}): too late for a graceful shutdown, "
            "stopping at once (demote scripts)",
        )
        return ScriptPhase.DEMOTE

    def _finish_release(self, phase: ScriptPhase, ok: bool, detail: str) -> None:
        rel = self.release
        assert rel is not None
        self.release = None
        self.unclean = not ok
        if ok:
            self.released_epoch = max(self.released_epoch, self.epoch)
            self.voter.release(self.p.name, self.epoch)
            self.lease.drop()
        outcome = ShutdownOutcome.CONFIRMED if ok else ShutdownOutcome.FAILED
        if ok and rel.pending_replies:
            self._yielded_at = self._now
        for rid in rel.pending_replies:
            self._emit(ReplyShutdown(ShutdownReply(rid, self.p.name, outcome, detail)))
        target = rel.then if ok else S.FAILED
        self._go(target, f"{phase} scripts {'succeeded' if ok else 'failed: ' + detail}")

    # -- incoming commands -----------------------------------------------------

    def _reply(self, req: ShutdownRequest, outcome: ShutdownOutcome, detail: str) -> None:
        if outcome is ShutdownOutcome.CONFIRMED:
            self._yielded_at = self._now
        self._emit(ReplyShutdown(ShutdownReply(req.request_id, self.p.name, outcome, detail)))
        self._decide(
            "command", f"SHUTDOWN_YOUR_SERVICE from {req.sender}: {outcome.value}, {detail}"
        )

    def _on_shutdown_request(self, req: ShutdownRequest) -> None:
        if req.sender != self.p.peer:
            return
        why = f"{req.sender} sent SHUTDOWN_YOUR_SERVICE: {req.reason}"
        if self.maintenance:
            self._reply(req, ShutdownOutcome.REFUSED, "in maintenance mode: not acting")
        elif self.state is S.ACTIVE and req.target_epoch < self.epoch:
            self._reply(req, ShutdownOutcome.REFUSED, f"stale: I am active at epoch {self.epoch}")
        elif self.state in (S.STANDBY, S.STARTING):
            self._reply(req, ShutdownOutcome.CONFIRMED, f"not running the service ({self.state})")
        elif self.scripts_running is ScriptPhase.FENCE:
            # The fence cannot be called back: never confirm to the node it powers off.
            self._reply(req, ShutdownOutcome.REFUSED, f"fencing {self.p.peer} already")
        elif (
            self.state is S.TAKING_OVER
            and self.scripts_running is not ScriptPhase.STARTUP
            and (self.takeover is None or self.takeover.phase is not Phase.STARTING_SERVICES)
        ):
            # Never heard it: it is the other node of the pair, so the preferred primary wins.
            mine = (
                outranks(self.p, self.peer_hb)
                if self.peer_hb is not None
                else self.p.preference is Preference.PRIMARY
            )
            if mine and not req.planned:
                self._reply(req, ShutdownOutcome.REFUSED, "taking over myself (I have priority)")
            else:
                self._abandon(f"{why}; it has priority: takeover abandoned")
                self._reply(req, ShutdownOutcome.CONFIRMED, "takeover abandoned, nothing started")
        else:
            self._decide("command", why)
            self._begin_release(why, S.STANDBY, Cause.SHUTDOWN_REQUESTED, reply_to=req.request_id)

    def _on_takeover_request(self, req: TakeoverRequest) -> None:
        if req.sender != self.p.peer:
            return
        ok = self.state is S.STANDBY and not self.maintenance and self._peer_serving()
        detail = (
            "taking over"
            if ok
            else f"cannot: this node is {self.state}"
            + (" in maintenance" if self.maintenance else "")
        )
        self._emit(ReplyTakeover(TakeoverReply(req.request_id, self.p.name, ok, detail)))
        if ok:
            cause = Cause.FAILBACK if "failback" in req.reason else Cause.SWITCHOVER
            self._begin_takeover(f"{req.sender} asked: {req.reason}", True, cause)

    # -- checks, scripts, stalls, operators --------------------------------------

    def _on_check(self, name: str, ok: bool, detail: str) -> None:
        """Local checks count while this node is active, remote ones while the peer is."""
        peer_active = (
            self.peer_fresh() and self.peer_hb is not None and self.peer_hb.state is S.ACTIVE
        ) or (self.peer_departed is not None and self.peer_departed.state is S.ACTIVE)
        for scope, checks, counts in (
            ("local", self.local, self.state is S.ACTIVE),
            ("remote", self.remote, peer_active),
        ):
            if not counts:
                continue
            tracker = checks.record(name, ok, detail)
            if tracker is not None:
                verdict = "up" if tracker.up else "down"
                self._decide("check", f"{scope} check {name} is {verdict}: {detail}")

    def _on_scripts_finished(self, phase: ScriptPhase, ok: bool, detail: str) -> None:
        if phase is not self.scripts_running:
            return
        self.scripts_running = None
        self._decide("script", f"{phase} scripts {'succeeded' if ok else 'failed'}: {detail}")
        if phase in _STOPS and self.state is S.RELEASING:
            rel = self.release
            if phase is ScriptPhase.SHUTDOWN and not ok and rel is not None and rel.escalated:
                # Cancelled (or failed on its own): the service may still run.
                self._run(ScriptPhase.DEMOTE, f"{rel.reason}; lease running out: stopping at once")
            else:
                self._finish_release(phase, ok, detail)
        elif phase is ScriptPhase.FENCE and self.takeover is not None:
            self.takeover.fencing = False
            if ok:
                self.takeover.fenced = True
            else:
                self.takeover.next_fence_at = self._now + self.t.fence_retry
        elif phase is ScriptPhase.STARTUP and self.state is S.TAKING_OVER:
            pending, self._pending_after_startup = self._pending_after_startup, []
            abort = self._release_after_startup
            self._release_after_startup = None
            if ok and abort is None:
                self.takeover = None
                self._go(S.ACTIVE, f"startup scripts succeeded at epoch {self.epoch}")
                return
            then = S.STANDBY if abort is not None else S.FAILED
            reason = abort or f"startup failed ({detail}): stopping what was started"
            cause = self._release_cause or Cause.STARTUP_FAILED
            self._release_cause = None
            self._release(reason, then, cause, pending)

    def _on_stall(self, seconds: float) -> None:
        self._decide(
            "hold",
            f"event loop stalled for {seconds:.2f}s: re-collecting heartbeats and checks "
            f"before judging {self.p.peer}",
        )
        if self.peer_heard_at is not None:
            self.peer_heard_at = max(self.peer_heard_at, self._now)
        self.witness = None
        self.remote.reset()

    def _on_departing(self) -> None:
        """Tell the peer this daemon goes away and leaves its service as it is."""
        self._decide("operator", f"daemon stopping; the service is left as it is ({self.state})")
        self._next_heartbeat = self._now
        self._maybe_heartbeat(departing=True)

    def _on_operator(self, op: Operation) -> None:
        if op is Operation.MAINTENANCE_ON:
            self.maintenance = True
            self._persist()
            self._decide("operator", "maintenance mode on: watching and reporting, never acting")
            self._emit(OperatorAnswer(True, "maintenance mode on"))
        elif op is Operation.MAINTENANCE_OFF:
            self.maintenance = False
            self._persist()
            self._decide("operator", "maintenance mode off")
            if self.state is S.FAILED:
                # The operator vouches that the service is stopped: release the lease at
                # once (the next heartbeats say so) rather than let the votes run out.
                self.unclean = False
                self.released_epoch = max(self.released_epoch, self.epoch)
                self.voter.release(self.p.name, self.epoch)
                self.lease.drop()
                self._go(S.STANDBY, "operator left maintenance: failed state cleared")
            self._emit(OperatorAnswer(True, "maintenance mode off"))
        else:
            self._operator_handover(op)

    def _operator_handover(self, op: Operation) -> None:
        failback = op is Operation.FAILBACK
        if self.maintenance:
            self._emit(OperatorAnswer(False, "this node is in maintenance mode"))
            return
        i_am_target = not failback or self.p.preference is Preference.PRIMARY
        if self.state is S.ACTIVE and failback and i_am_target:
            self._emit(OperatorAnswer(True, f"{self.p.name} (the primary) is already active"))
        elif self.state is S.STANDBY and i_am_target:
            if not self._peer_serving():
                self._emit(
                    OperatorAnswer(False, f"{self.p.peer} is not active: nothing to hand over")
                )
                return
            cause = Cause.FAILBACK if failback else Cause.SWITCHOVER
            self._begin_takeover(f"operator {op.value}", True, cause)
            self._emit(OperatorAnswer(True, f"{op.value}: {self.p.name} is taking over"))
        elif self.state is S.ACTIVE:
            if not (self.peer_fresh() and self.peer_hb and self.peer_hb.state is S.STANDBY):
                self._emit(OperatorAnswer(False, f"{self.p.peer} is not a healthy standby"))
                return
            self._emit(
                SendTakeover(TakeoverRequest(self._new_id(), self.p.name, f"operator {op.value}"))
            )
            self._emit(OperatorAnswer(True, f"{op.value}: asked {self.p.peer} to take over"))
        else:
            self._emit(OperatorAnswer(False, f"{op.value} is not possible while {self.state}"))

    # -- the periodic evaluation ---------------------------------------------------

    def _evaluate(self) -> None:
        if self.state is S.STARTING:
            self._evaluate_starting()
        elif self.state is S.STANDBY:
            self._evaluate_standby()
        elif self.state is S.TAKING_OVER and self.takeover is not None:
            self._advance_takeover()
        elif self.state is S.RELEASING:
            self._evaluate_releasing()
        if self.state in (S.ACTIVE, S.TAKING_OVER):
            self._evaluate_holder()

    def _evaluate_starting(self) -> None:
        was = self._restored_from
        if was is not None and was in MAYBE_SERVING and was is not S.FAILED and self.maintenance:
            self._go(S.ACTIVE, f"restarted while {was} in maintenance mode: nothing touched")
        elif was is not None and was in MAYBE_SERVING:
            self._begin_release(
                f"restarted while {was}: stopping local services before anything else",
                S.STANDBY,
                Cause.RESTART,
            )
        elif self.peer_heard_at is not None:
            hb = self.peer_hb
            self._go(
                S.STANDBY,
                f"{self.p.peer} heard: {hb.state if hb else '?'} at epoch "
                f"{hb.epoch if hb else '?'}",
            )
        elif self._now >= self.started_at + self.t.init_dead:
            self._go(S.STANDBY, f"{self.p.peer} not heard within init_dead {self.t.init_dead:g}s")

    def _evaluate_standby(self) -> None:
        if self.maintenance or self._now < self._retry_at:
            return
        decision = self._takeover_reason()
        if decision is not None:
            self._begin_takeover(*decision)

    def _evaluate_holder(self) -> None:
        hb = self.peer_hb
        if (
            self.state is S.ACTIVE
            and self.peer_fresh()
            and hb is not None
            and hb.state is S.ACTIVE
            and (hb.epoch, outranks(hb, self.p)) > (self.epoch, False)
        ):
            why = (
                f"above mine ({self.epoch})"
                if hb.epoch > self.epoch
                else "like mine, and it has priority (preferred primary, then name)"
            )
            self._begin_release(
                f"{hb.sender} is also active, at epoch {hb.epoch}, {why}: releasing",
                S.STANDBY,
                Cause.HIGHER_EPOCH,
            )
            return
        demote_at = self.demote_at()
        if demote_at is None or self._now < demote_at:
            return
        if self.maintenance:
            self._hold("maintenance-lease", "lease not renewed, but maintenance mode: not acting")
            return
        stop = "shutdown ends" if self.p.demote_budget is None else "the demote scripts end"
        self._begin_release(
            f"lease not renewed ({self._lease_left()}): self-demoting so that {stop} first",
            S.STANDBY,
            Cause.LEASE_LOST,
        )

    def _evaluate_releasing(self) -> None:
        escalate_at = self.escalate_at()
        if escalate_at is None or self._now < escalate_at:
            return
        if self.maintenance:
            self._hold(
                "maintenance-escalate",
                "lease not renewed during a graceful shutdown, but maintenance mode: not acting",
            )
            return
        assert self.release is not None  # (escalate_at says so)
        self.release.escalated = True
        self._decide(
            "lease",
            f"lease not renewed during a graceful shutdown ({self._lease_left()}): stopping at "
            "once (shutdown cancelled, demote scripts next)",
        )
        self._emit(CancelScripts())

    # -- heartbeats -------------------------------------------------------------

    def _wants_lease(self) -> bool:
        """While the service runs, or may run: a failed shutdown keeps the lease held, so
        that the peer cannot start until an operator has looked (as Pacemaker blocks)."""
        if not self.witness_mode:
            return False
        if self.state is S.FAILED:
            return self.unclean
        return self.state in (S.ACTIVE, S.RELEASING) or (
            self.state is S.TAKING_OVER
            and self.takeover is not None
            and self.takeover.phase in (Phase.ACQUIRING_LEASE, Phase.STARTING_SERVICES)
        )

    def _maybe_heartbeat(self, departing: bool = False) -> None:
        if self._now < self._next_heartbeat:
            return
        self._next_heartbeat = self._now + self.t.heartbeat_interval
        want = self._wants_lease()
        to = self.takeover
        epoch = to.candidate_epoch if want and to is not None else self.epoch
        if want:
            self.lease.start(epoch)
            verdict = self.voter.consider(self.p.name, epoch, self.t.lease_time, self._now)
            if verdict.granted:
                self.lease.grant(self.p.name, epoch, self._now)
        down = self.local.down() if self.state is S.ACTIVE else ()
        self._emit(
            SendHeartbeat(
                Heartbeat(
                    sender=self.p.name,
                    state=self.state,
                    epoch=self.epoch,
                    preference=self.p.preference,
                    checks_ok=not down,
                    failing_checks=tuple(t.spec.name for t in down),
                    maintenance=self.maintenance,
                    lease_request=want,
                    lease_epoch=epoch,
                    lease_time=self.t.lease_time,
                    released_epoch=self.released_epoch,
                    sent_at=self._now,
                    departing=departing,
                )
            )
        )
