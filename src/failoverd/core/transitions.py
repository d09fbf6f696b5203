"""The node's state transitions, as data.

`NodeCore` refuses any move that is not listed here, so this table is the
truth that the docs' state diagram (`failoverd states --dot`) is drawn from.
"""

from dataclasses import dataclass

from failoverd.core.types import NodeState as S


@dataclass(frozen=True, slots=True)
class Transition:
    source: S
    target: S
    when: str


TRANSITIONS: tuple[Transition, ...] = (
    Transition(S.STARTING, S.STANDBY, "the peer was heard, or init_dead passed without it"),
    Transition(S.STARTING, S.RELEASING, "restarted while it may have been running the service"),
    Transition(S.STARTING, S.ACTIVE, "restarted active in maintenance mode: nothing is touched"),
    Transition(S.STANDBY, S.TAKING_OVER, "peer failed, no node active, switchover or failback"),
    Transition(S.TAKING_OVER, S.STANDBY, "peer healthy again, switchover refused, or lost race"),
    Transition(S.TAKING_OVER, S.ACTIVE, "startup scripts succeeded"),
    Transition(S.TAKING_OVER, S.RELEASING, "startup failed, aborted, or told to shut down"),
    Transition(S.ACTIVE, S.RELEASING, "SHUTDOWN_YOUR_SERVICE, lease running out, higher epoch"),
    Transition(S.RELEASING, S.STANDBY, "shutdown (or demote) scripts succeeded"),
    Transition(S.RELEASING, S.FAILED, "shutdown or demote scripts failed, or startup failed"),
    Transition(S.FAILED, S.RELEASING, "SHUTDOWN_YOUR_SERVICE: the shutdown scripts run again"),
    Transition(S.FAILED, S.STANDBY, "operator: maintenance off clears the failed state"),
)

_ALLOWED = {(t.source, t.target) for t in TRANSITIONS}


class IllegalTransition(RuntimeError):
    """A bug: the core tried a move that the table does not allow."""


def check(source: S, target: S) -> None:
    if (source, target) not in _ALLOWED:
        raise IllegalTransition(f"{source} -> {target} is not in the transition table")


def dot() -> str:
    """Graphviz source of the state diagram."""
    lines = ["digraph failoverd {", "  rankdir=LR;"]
    for t in TRANSITIONS:
        lines.append(f'  {t.source} -> {t.target} [label="{t.when}"];')
    lines.append("}")
    return "\n".join(lines)
