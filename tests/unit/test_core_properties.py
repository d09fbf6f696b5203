"""Properties of the core's decisions under random event sequences (Hypothesis).

A NodeCore is fed whatever a hostile or broken world could send it, in any
order, at non-decreasing times: it never raises, every state change it makes
is in the transition table (and chains from the state it was in), every
decision carries a reason, scripts run one phase at a time with the takeover
epoch persisted first, and every SHUTDOWN_YOUR_SERVICE is answered once the
scripts it waits for have ended. A Voter never lets two candidates hold
overlapping votes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tests.sim.cluster import (
    POP3_LOCAL,
    POP3_REMOTE,
    PRIMARY,
    STANDBY,
    WITNESS,
    Budgets,
    default_timing,
    node_params,
)

from failoverd.core.actions import (
    Action,
    Persist,
    Record,
    ReplyShutdown,
    RunScripts,
    SendHeartbeat,
    SendShutdown,
)
from failoverd.core.events import (
    AckReceived,
    CheckResult,
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
from failoverd.core.messages import Ack, Heartbeat, PeerView, ShutdownRequest, TakeoverRequest
from failoverd.core.node import NodeCore
from failoverd.core.params import vote_block
from failoverd.core.records import PersistedState
from failoverd.core.transitions import TRANSITIONS
from failoverd.core.types import NodeState, Preference, SafetyMode, ScriptPhase, ShutdownOutcome
from failoverd.core.voter import Voter

ALLOWED = {(t.source, t.target) for t in TRANSITIONS}
EPOCHS = st.integers(min_value=0, max_value=6)
RARELY = st.sampled_from((False, False, False, True))  # maintenance mode


@dataclass
class World:
    """What the test knows of the node it drives, to draw plausible events."""

    core: NodeCore
    now: float
    state: NodeState
    running: ScriptPhase | None = None
    persisted_epoch: int | None = None
    sent_requests: list[str] = field(default_factory=list)
    heartbeat_times: list[float] = field(default_factory=list)
    received_requests: list[str] = field(default_factory=list)
    replied: list[str] = field(default_factory=list)
    next_request: int = 0
    history: list[str] = field(default_factory=list)

    def feed(self, event: Event) -> list[Action]:
        actions = self.core.handle(event, self.now)
        self.history.append(f"{self.now:.3f} {event} -> {actions}")
        for action in actions:
            try:
                self.check(action)
            except AssertionError as e:
                raise AssertionError("\n".join([str(e), *self.history])) from None
        assert self.core.state is self.state
        assert self.core.next_wakeup() > self.now
        return actions

    def check(self, action: Action) -> None:
        match action:
            case Record(decision):
                assert decision.reason.strip(), decision
                if decision.is_transition:
                    move = (decision.from_state, decision.to_state)
                    assert move in ALLOWED, move
                    assert decision.from_state is self.state, (decision, self.state)
                    assert decision.to_state is not None
                    self.state = decision.to_state
                    event(f"reached {self.state}")
            case RunScripts(phase, epoch, reason):
                assert self.running is None, f"{phase} while {self.running} runs"
                assert reason.strip()
                if phase is ScriptPhase.DEMOTE:
                    assert self.core.p.demote_budget is not None, "demote without demote scripts"
                if phase is ScriptPhase.STARTUP:
                    assert self.persisted_epoch == epoch, "startup before its epoch is on disk"
                self.running = phase
            case Persist(state):
                assert state.state is self.state
                self.persisted_epoch = state.epoch
            case SendShutdown(req):
                self.sent_requests.append(req.request_id)
            case SendHeartbeat(hb):
                self.heartbeat_times.append(hb.sent_at)
            case ReplyShutdown(reply):
                assert reply.request_id in self.received_requests
                assert reply.request_id not in self.replied, "answered twice"
                self.replied.append(reply.request_id)


def heartbeats(w: World) -> st.SearchStrategy[Event]:
    return st.builds(
        lambda state, epoch, ok, maint, ask, lease_epoch, released, back: HeartbeatReceived(
            Heartbeat(
                sender=w.core.p.peer,
                state=state,
                epoch=epoch,
                preference=Preference.STANDBY
                if w.core.p.preference is Preference.PRIMARY
                else Preference.PRIMARY,
                checks_ok=ok,
                failing_checks=() if ok else ("pop3",),
                maintenance=maint,
                lease_request=ask,
                lease_epoch=lease_epoch,
                lease_time=w.core.t.lease_time,
                released_epoch=released,
                sent_at=w.now - back,
            )
        ),
        st.sampled_from(NodeState),
        EPOCHS,
        st.booleans(),
        RARELY,
        st.booleans(),
        EPOCHS,
        EPOCHS,
        st.floats(min_value=0.0, max_value=2.0),
    )


def acks(w: World) -> st.SearchStrategy[Event]:
    times = st.sampled_from(w.heartbeat_times) if w.heartbeat_times else st.just(w.now)
    view = st.builds(
        lambda state, age, ok: PeerView(w.core.p.peer, age, state, 1, ok, False),
        st.sampled_from(NodeState),
        st.floats(min_value=0.0, max_value=3.0),
        st.booleans(),
    )
    return st.builds(
        lambda voter, epoch, granted, sent, max_epoch, views: AckReceived(
            Ack(voter, w.core.p.name, epoch, granted, "x", sent, max_epoch, views)
        ),
        st.sampled_from((w.core.p.peer, WITNESS)),
        EPOCHS,
        st.sampled_from((True, False, None)),
        times,
        EPOCHS,
        st.lists(view, max_size=1).map(tuple),
    )


def shutdown_requests(w: World) -> st.SearchStrategy[Event]:
    w.next_request += 1
    rid = f"peer-{w.next_request}"
    return st.builds(
        lambda epoch, planned: ShutdownRequested(
            ShutdownRequest(rid, w.core.p.peer, epoch, "test", planned)
        ),
        EPOCHS,
        st.booleans(),
    )


def answers(w: World) -> st.SearchStrategy[Event]:
    ids = st.sampled_from(w.sent_requests) if w.sent_requests else st.just("unknown")
    return st.builds(
        lambda rid, outcome: ShutdownAnswered(rid, outcome, "test"),
        ids,
        st.sampled_from(ShutdownOutcome),
    )


def script_ends(w: World) -> st.SearchStrategy[Event]:
    phases = st.sampled_from(ScriptPhase)
    if w.running is not None:
        phases = st.just(w.running) | phases
    return st.builds(lambda phase, ok: ScriptsFinished(phase, ok, "test"), phases, st.booleans())


def others(w: World) -> st.SearchStrategy[Event]:
    return st.one_of(
        st.just(Tick()),
        st.just(TakeoverRequested(TakeoverRequest("t", w.core.p.peer, "test"))),
        st.builds(
            lambda name, ok: CheckResult(name, ok, "test"),
            st.sampled_from((POP3_LOCAL.name, POP3_REMOTE.name, "unknown")),
            st.booleans(),
        ),
        st.builds(Stalled, st.floats(min_value=0.0, max_value=30.0)),
        st.builds(OperatorCommand, st.sampled_from(Operation)),
        st.builds(lambda ok: TakeoverAnswered("x", ok, "test"), st.booleans()),
    )


def apply(w: World, event: Event) -> None:
    if isinstance(event, ShutdownRequested):
        w.received_requests.append(event.request.request_id)
    if isinstance(event, ScriptsFinished) and event.phase is w.running:
        w.running = None
    w.feed(event)


@st.composite
def runs(draw: st.DrawFn) -> World:
    mode = draw(st.sampled_from(SafetyMode))
    name = draw(st.sampled_from((PRIMARY, STANDBY)))
    pref = Preference.PRIMARY if name == PRIMARY else Preference.STANDBY
    demote = draw(st.none() | st.just(0.3)) if mode is SafetyMode.WITNESS else None
    params = node_params(
        name,
        pref,
        mode,
        default_timing(),
        checks=(POP3_LOCAL, POP3_REMOTE),
        budgets=Budgets(demote=demote),
    )
    persisted = draw(
        st.none()
        | st.builds(
            lambda epoch, state, maint: PersistedState(epoch, state, maint, 0, "test"),
            EPOCHS,
            st.sampled_from(NodeState),
            RARELY,
        )
    )
    now = draw(st.floats(min_value=0.0, max_value=1e6))
    w = World(NodeCore(params, now, persisted, instance="1"), now, NodeState.STARTING)
    w.feed(Tick())
    for _ in range(draw(st.integers(min_value=1, max_value=60))):
        step = draw(st.sampled_from(("wait", "wakeup", "hb", "ack", "req", "ans", "end", "misc")))
        if step == "wait":
            w.now += draw(st.floats(min_value=0.0, max_value=3.0))
            event: Event = Tick()
        elif step == "wakeup":
            w.now = max(w.now, w.core.next_wakeup())
            event = Tick()
        else:
            event = draw(
                {
                    "hb": heartbeats,
                    "ack": acks,
                    "req": shutdown_requests,
                    "ans": answers,
                    "end": script_ends,
                    "misc": others,
                }[step](w)
            )
        apply(w, event)
    return w


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs())
def test_random_event_sequences_keep_the_core_consistent(w: World) -> None:
    """The checks run inside World.feed at every step; here: every request is answered
    once the scripts it waits for have ended."""
    event(f"{w.core.p.mode}: ends {w.state}")
    for _ in range(20):
        if w.running is None:
            break
        w.now += 0.5
        apply(w, ScriptsFinished(w.running, True, "test"))
    assert w.running is None, "scripts keep starting one after the other"
    unanswered = set(w.received_requests) - set(w.replied)
    assert not unanswered, f"SHUTDOWN_YOUR_SERVICE never answered: {unanswered}"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(("a", "b", "c")),
            EPOCHS,
            st.floats(min_value=0.0, max_value=2.0),  # time step
            st.booleans(),  # a release of (candidate, epoch) instead of a request
        ),
        max_size=80,
    ),
    st.floats(min_value=0.0, max_value=0.05),
    st.floats(min_value=0.0, max_value=0.5),
)
def test_a_voter_never_grants_two_candidates_overlapping_votes(
    steps: list[tuple[str, int, float, bool]], drift: float, margin: float
) -> None:
    lease_time = 2.0
    voter = Voter(drift, margin, booted_at=0.0)
    block = vote_block(lease_time, drift, margin)
    now = 0.0
    # The vote currently out: (candidate, epoch, until), as the grants say.
    out: tuple[str, int, float] | None = None
    for candidate, epoch, dt, release in steps:
        now += dt
        if release:
            if voter.release(candidate, epoch) and out is not None and out[0] == candidate:
                assert out[1] <= epoch
                out = None
            continue
        if voter.consider(candidate, epoch, lease_time, now).granted:
            assert now >= block, "granted within the quiet block after its start"
            if out is not None and out[0] != candidate:
                assert now >= out[2], f"{candidate} granted while {out[0]}'s vote runs"
            out = (candidate, epoch, now + block)
