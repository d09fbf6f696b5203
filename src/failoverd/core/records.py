"""What the core hands out besides actions to carry out: decisions and persisted state."""

from dataclasses import dataclass, field

from failoverd.core.types import NodeState


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision, with its reason in plain words.

    Logged, appended to the journal, shown by `failoverd history`, sent as an
    alert when it is a transition or a script failure, and asserted in tests.
    `at` is the deciding node's clock (monotonic); the runtime adds wall time.
    `kind` is one of: transition, hold, command, script, refused, lease, operator.
    """

    at: float
    node: str
    kind: str
    reason: str
    epoch: int
    from_state: NodeState | None = None
    to_state: NodeState | None = None
    details: tuple[tuple[str, str], ...] = field(default=())

    @property
    def is_transition(self) -> bool:
        return self.from_state is not None and self.to_state is not None


@dataclass(frozen=True, slots=True)
class PersistedState:
    """What a node keeps across restarts (state_dir/state.json, atomic write + fsync).

    epoch: the highest epoch this node has taken over with or seen active.
    state: the state it was in when this was written.
    released_epoch: the last epoch whose services it has fully stopped.
    """

    epoch: int
    state: NodeState
    maintenance: bool
    released_epoch: int
    last_transition: str
