"""What the core asks the runtime (or the simulator) to do."""

from dataclasses import dataclass

from failoverd.core.messages import (
    Ack,
    Heartbeat,
    ShutdownReply,
    ShutdownRequest,
    TakeoverReply,
    TakeoverRequest,
)
from failoverd.core.records import Decision, PersistedState
from failoverd.core.types import ScriptPhase


@dataclass(frozen=True, slots=True)
class SendHeartbeat:
    """To every address of the peer and to the witness, if any."""

    heartbeat: Heartbeat


@dataclass(frozen=True, slots=True)
class SendAck:
    """Back to `to` (the sender of the heartbeat being answered)."""

    to: str
    ack: Ack


@dataclass(frozen=True, slots=True)
class SendShutdown:
    """Over the peer's command channel; the answer comes back as ShutdownAnswered.

    The runtime reports UNREACHABLE as soon as it knows it cannot deliver; the
    core applies its own shutdown_timeout regardless.
    """

    request: ShutdownRequest


@dataclass(frozen=True, slots=True)
class ReplyShutdown:
    reply: ShutdownReply


@dataclass(frozen=True, slots=True)
class SendTakeover:
    request: TakeoverRequest


@dataclass(frozen=True, slots=True)
class ReplyTakeover:
    reply: TakeoverReply


@dataclass(frozen=True, slots=True)
class RunScripts:
    """Run a phase; its end comes back as ScriptsFinished. Only one phase runs at a time."""

    phase: ScriptPhase
    epoch: int
    reason: str


@dataclass(frozen=True, slots=True)
class CancelScripts:
    """Kill the running phase (its ScriptsFinished then reports failure)."""


@dataclass(frozen=True, slots=True)
class Persist:
    """Write before carrying out any later action of the same batch (atomic write + fsync)."""

    state: PersistedState


@dataclass(frozen=True, slots=True)
class Record:
    decision: Decision


@dataclass(frozen=True, slots=True)
class OperatorAnswer:
    ok: bool
    message: str


Action = (
    SendHeartbeat
    | SendAck
    | SendShutdown
    | ReplyShutdown
    | SendTakeover
    | ReplyTakeover
    | RunScripts
    | CancelScripts
    | Persist
    | Record
    | OperatorAnswer
)
