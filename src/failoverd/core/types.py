"""Enumerations shared by the core, the wire format and the runtime."""

from enum import StrEnum


class NodeState(StrEnum):
    """Runtime state of a node (see `core.transitions` for the allowed moves)."""

    STARTING = "starting"
    STANDBY = "standby"
    TAKING_OVER = "taking_over"
    ACTIVE = "active"
    RELEASING = "releasing"
    FAILED = "failed"


class Preference(StrEnum):
    """Configured preference: which node should normally run the service."""

    PRIMARY = "primary"
    STANDBY = "standby"


class SafetyMode(StrEnum):
    """How a node convinces itself that its peer is not active before it starts services."""

    WITNESS = "witness"
    FENCE = "fence"
    COOPERATIVE = "cooperative"


class ScriptPhase(StrEnum):
    """`shutdown` stops the service gracefully; `demote` (witness mode, optional) stops it
    at once, when the node must stop because it cannot renew its lease."""

    STARTUP = "startup"
    SHUTDOWN = "shutdown"
    DEMOTE = "demote"
    FENCE = "fence"


class CheckScope(StrEnum):
    """`local`: this node's own service (counts while active). `remote`: the peer's service."""

    LOCAL = "local"
    REMOTE = "remote"


class ShutdownOutcome(StrEnum):
    """How a SHUTDOWN_YOUR_SERVICE request ended, as the requester saw it."""

    CONFIRMED = "CONFIRMED"
    FAILED = "FAILED"
    # The peer is alive and answering, and will not stop: it is active at a higher
    # epoch, in maintenance, or taking over itself with priority. Never a reason to
    # start: the requester abandons its takeover.
    REFUSED = "REFUSED"
    UNREACHABLE = "UNREACHABLE"


# States in which a node may be running its services (or may have left them
# running: a failed shutdown leaves the service in an unknown state).
MAYBE_SERVING = frozenset(
    {NodeState.TAKING_OVER, NodeState.ACTIVE, NodeState.RELEASING, NodeState.FAILED}
)


class Cause(StrEnum):
    """Why a node took the service over or gave it up: a closed set, for metrics and alerts."""

    PEER_SILENT = "peer_silent"
    PEER_CHECKS_FAILED = "peer_checks_failed"
    REMOTE_CHECKS_FAILED = "remote_checks_failed"
    PEER_FAILED = "peer_failed"
    NO_ACTIVE_NODE = "no_active_node"
    SWITCHOVER = "switchover"
    FAILBACK = "failback"
    HIGHER_EPOCH = "higher_epoch"
    LEASE_LOST = "lease_lost"
    SHUTDOWN_REQUESTED = "shutdown_requested"
    STARTUP_FAILED = "startup_failed"
    RESTART = "restart"
