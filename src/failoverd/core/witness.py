"""The witness: a third vote on the lease, and a second observer of the primary.

It answers every node's heartbeat with an Ack carrying its vote (when one is
asked for) and what it last heard from the other node, so that a standby that
lost its own link to the primary can tell "primary dead" from "my path cut".
"""

from dataclasses import dataclass

from failoverd.core.actions import Action, Persist, Record, SendAck
from failoverd.core.events import Event, HeartbeatReceived
from failoverd.core.messages import Ack, Heartbeat, PeerView
from failoverd.core.records import Decision, PersistedState
from failoverd.core.types import NodeState
from failoverd.core.voter import Voter


@dataclass(frozen=True, slots=True)
class WitnessStatus:
    name: str
    holder: str | None
    holder_epoch: int
    vote_left: float
    max_epoch: int
    quiet_left: float
    views: tuple[PeerView, ...]


class WitnessCore:
    def __init__(
        self,
        name: str,
        nodes: tuple[str, str],
        *,
        drift: float,
        margin: float,
        now: float,
        persisted: PersistedState | None,
    ) -> None:
        self.name = name
        self.nodes = nodes
        self.voter = Voter(drift, margin, booted_at=now)
        self.voter.max_epoch = persisted.epoch if persisted else 0
        self._heard: dict[str, tuple[Heartbeat, float]] = {}
        self._holder_seen: tuple[str | None, int] = (None, 0)
        self._now = now

    def handle(self, event: Event, now: float) -> list[Action]:
        self._now = now
        if not isinstance(event, HeartbeatReceived):
            return []
        hb = event.heartbeat
        if hb.sender not in self.nodes:
            return []
        out: list[Action] = []
        self._heard[hb.sender] = (hb, now)
        if hb.released_epoch and self.voter.release(hb.sender, hb.released_epoch):
            out.append(self._record(f"{hb.sender} released epoch {hb.released_epoch}: vote freed"))
        granted: bool | None = None
        refusal = ""
        if hb.lease_request:
            verdict = self.voter.consider(hb.sender, hb.lease_epoch, hb.lease_time, now)
            granted, refusal = verdict.granted, verdict.refusal
            holder = (self.voter.holder, self.voter.holder_epoch)
            if verdict.granted and holder != self._holder_seen:
                self._holder_seen = holder
                out.append(self._record(f"vote granted to {hb.sender} for epoch {hb.lease_epoch}"))
                out.append(self._persist())
        a, b = self.nodes
        view = self._view(b if hb.sender == a else a)
        views = () if view is None else (view,)
        out.append(
            SendAck(
                hb.sender,
                Ack(
                    voter=self.name,
                    candidate=hb.sender,
                    lease_epoch=hb.lease_epoch,
                    granted=granted,
                    refusal=refusal,
                    request_sent_at=hb.sent_at,
                    max_epoch=self.voter.max_epoch,
                    views=views,
                ),
            )
        )
        return out

    def _view(self, node: str) -> PeerView | None:
        seen = self._heard.get(node)
        if seen is None:
            return None
        hb, at = seen
        return PeerView(
            node=node,
            age=self._now - at,
            state=hb.state,
            epoch=hb.epoch,
            checks_ok=hb.checks_ok,
            maintenance=hb.maintenance,
        )

    def _record(self, reason: str) -> Record:
        return Record(
            Decision(
                at=self._now,
                node=self.name,
                kind="lease",
                reason=reason,
                epoch=self.voter.max_epoch,
            )
        )

    def _persist(self) -> Persist:
        return Persist(
            PersistedState(
                epoch=self.voter.max_epoch,
                state=NodeState.STANDBY,
                maintenance=False,
                released_epoch=0,
                last_transition=f"vote: {self.voter.holder} epoch {self.voter.holder_epoch}",
            )
        )

    def status(self) -> WitnessStatus:
        holder = self.voter.held_by(self._now)
        quiet = self.voter.booted_at + self.voter.block(0.0) - self._now
        return WitnessStatus(
            name=self.name,
            holder=holder,
            holder_epoch=self.voter.holder_epoch if holder else 0,
            vote_left=max(0.0, self.voter.until - self._now) if holder else 0.0,
            max_epoch=self.voter.max_epoch,
            quiet_left=max(0.0, quiet),
            views=tuple(v for n in self.nodes if (v := self._view(n)) is not None),
        )
