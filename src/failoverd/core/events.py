"""What the runtime (or the simulator) tells the core. The time comes separately."""

from dataclasses import dataclass
from enum import StrEnum

from failoverd.core.messages import Ack, Heartbeat, ShutdownRequest, TakeoverRequest
from failoverd.core.types import ScriptPhase, ShutdownOutcome


@dataclass(frozen=True, slots=True)
class Tick:
    """Time has passed (the runtime calls at `next_wakeup()` at the latest)."""


@dataclass(frozen=True, slots=True)
class HeartbeatReceived:
    heartbeat: Heartbeat


@dataclass(frozen=True, slots=True)
class AckReceived:
    ack: Ack


@dataclass(frozen=True, slots=True)
class ShutdownRequested:
    request: ShutdownRequest


@dataclass(frozen=True, slots=True)
class ShutdownAnswered:
    """The peer's reply to our SHUTDOWN_YOUR_SERVICE, or UNREACHABLE if it could not be asked."""

    request_id: str
    outcome: ShutdownOutcome
    detail: str


@dataclass(frozen=True, slots=True)
class TakeoverRequested:
    request: TakeoverRequest


@dataclass(frozen=True, slots=True)
class TakeoverAnswered:
    request_id: str
    accepted: bool
    detail: str


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class ScriptsFinished:
    phase: ScriptPhase
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Stalled:
    """The runtime's own event loop was frozen for `seconds` (SIGSTOP, VM pause, slow disk)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Departing:
    """The daemon is being stopped (SIGTERM); the service is left as it is."""


class Operation(StrEnum):
    MAINTENANCE_ON = "maintenance_on"
    MAINTENANCE_OFF = "maintenance_off"
    SWITCHOVER = "switchover"
    FAILBACK = "failback"


@dataclass(frozen=True, slots=True)
class OperatorCommand:
    operation: Operation


Event = (
    Tick
    | HeartbeatReceived
    | AckReceived
    | ShutdownRequested
    | ShutdownAnswered
    | TakeoverRequested
    | TakeoverAnswered
    | CheckResult
    | ScriptsFinished
    | Stalled
    | Departing
    | OperatorCommand
)
