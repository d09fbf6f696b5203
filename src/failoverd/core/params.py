"""Everything the core needs to know from the configuration, in seconds.

`failoverd.config` builds these from the TOML file; the simulator builds them
directly. Keeping them as plain frozen dataclasses keeps the core free of the
config library.
"""

from dataclasses import dataclass, field

from failoverd.core.types import CheckScope, Preference, SafetyMode


@dataclass(frozen=True, slots=True)
class CheckSpec:
    name: str
    scope: CheckScope
    interval: float
    timeout: float
    rise: int
    fall: int


@dataclass(frozen=True, slots=True)
class Timing:
    """Timers of the protocol.

    heartbeat_interval: how often a node sends a heartbeat (and renews its lease).
    dead_time: silence after which the peer counts as lost.
    init_dead: how long a starting node waits to hear its peer before it judges it.
    shutdown_timeout: how long the standby waits for CONFIRMED/FAILED.
    lease_time: how long a granted vote lets the holder stay active (witness mode).
    drift: the bound on clock-rate difference between any two hosts (0.01 = 1 %).
    demote_margin: slack kept between the end of self-demotion and the lease's end.
    max_network_delay: the one-way delay assumed for the worst-case bound.
    fence_retry: pause between two fence attempts when one failed.
    auto_failback_delay: how long the preferred primary waits, healthy, before failback.
    """

    heartbeat_interval: float
    dead_time: float
    init_dead: float
    shutdown_timeout: float
    lease_time: float
    drift: float
    demote_margin: float
    max_network_delay: float
    fence_retry: float
    auto_failback_delay: float

    @property
    def vote_block(self) -> float:
        return vote_block(self.lease_time, self.drift, self.demote_margin)


def vote_block(lease_time: float, drift: float, margin: float) -> float:
    """How long a voter refuses other candidates after a grant, on its own clock.

    The holder counts its lease from when it *sent* the request, on its clock;
    the voter counts from when it *received* it, on its clock. With clock rates
    within 1 +- drift of real time, the holder's lease lasts at most
    lease_time / (1 - drift) of real time and the voter's block at least
    block / (1 + drift): the block must not end first.
    """
    return lease_time * (1 + drift) / (1 - drift) + margin


@dataclass(frozen=True, slots=True)
class NodeParams:
    name: str
    peer: str
    preference: Preference
    mode: SafetyMode
    witness: str | None
    timing: Timing
    startup_budget: float
    shutdown_budget: float
    fence_budget: float
    auto_failback: bool
    checks: tuple[CheckSpec, ...] = field(default=())
    demote_budget: float | None = None
    """Witness mode: the demote scripts' budget (None: no demote scripts configured)."""

    voters: tuple[str, ...] = field(init=False)
    """Who votes on the lease in witness mode (empty in the other modes); derived once,
    as the core asks for it on every event."""
    stop_budget: float = field(init=False)
    """What a stop forced by the lease costs: the demote scripts' budget, or without them
    the shutdown scripts'. The lease is sized by it; the holder self-demotes by it."""

    def __post_init__(self) -> None:
        voters = (
            tuple(sorted((self.name, self.peer, self.witness)))
            if self.mode is SafetyMode.WITNESS and self.witness is not None
            else ()
        )
        object.__setattr__(self, "voters", voters)
        stop = self.shutdown_budget if self.demote_budget is None else self.demote_budget
        object.__setattr__(self, "stop_budget", stop)

    def checks_of(self, scope: CheckScope) -> tuple[CheckSpec, ...]:
        return tuple(c for c in self.checks if c.scope is scope)
