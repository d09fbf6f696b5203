"""The contents of the messages nodes and the witness exchange.

These are plain values; `failoverd.wire` encodes, authenticates and decodes them.
Times named `*_at` in a message are the *sender's* monotonic clock: receivers
never compare them with their own clock, they only echo them back (that is how
a lease holder knows when it asked for a vote, on its own clock).
"""

from dataclasses import dataclass

from failoverd.core.types import NodeState, Preference, ShutdownOutcome


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Sent by a node every heartbeat interval to its peer and to the witness.

    With `lease_request` set it also asks every receiver that is a voter for
    its vote for `lease_epoch` (witness mode). `released_epoch` repeats, in every
    heartbeat, the last epoch whose services this node has fully stopped, so
    that voters can free their vote even if the one-off release was lost.
    """

    sender: str
    state: NodeState
    epoch: int
    preference: Preference
    checks_ok: bool
    failing_checks: tuple[str, ...]
    maintenance: bool
    lease_request: bool
    lease_epoch: int
    lease_time: float
    released_epoch: int
    sent_at: float
    departing: bool = False


@dataclass(frozen=True, slots=True)
class PeerView:
    """What a voter last heard from a node: the standby asks the witness for a second opinion."""

    node: str
    age: float
    state: NodeState
    epoch: int
    checks_ok: bool
    maintenance: bool


@dataclass(frozen=True, slots=True)
class Ack:
    """The answer to a heartbeat: a vote when one was asked for, and the voter's view.

    `granted` is None when the heartbeat asked for no vote.
    """

    voter: str
    candidate: str
    lease_epoch: int
    granted: bool | None
    refusal: str
    request_sent_at: float
    max_epoch: int
    views: tuple[PeerView, ...]


@dataclass(frozen=True, slots=True)
class ShutdownRequest:
    """SHUTDOWN_YOUR_SERVICE: stop your services if you are (still) at `target_epoch`."""

    request_id: str
    sender: str
    target_epoch: int
    reason: str
    planned: bool


@dataclass(frozen=True, slots=True)
class ShutdownReply:
    """CONFIRMED (services stopped) or FAILED (a shutdown script failed, or refused)."""

    request_id: str
    sender: str
    outcome: ShutdownOutcome
    detail: str


@dataclass(frozen=True, slots=True)
class TakeoverRequest:
    """Asks the peer to take the service over (an operator's switchover or failback)."""

    request_id: str
    sender: str
    reason: str


@dataclass(frozen=True, slots=True)
class TakeoverReply:
    request_id: str
    sender: str
    accepted: bool
    detail: str


Message = Heartbeat | Ack | ShutdownRequest | ShutdownReply | TakeoverRequest | TakeoverReply
