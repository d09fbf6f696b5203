"""The worst-case time from a primary failure to the standby being active.

Pure arithmetic over the parameters, shared by `check-config` (which prints
it) and the simulator (which checks every liveness schedule against it).
"Active" here means the startup scripts have finished; every script is assumed
to succeed, at worst at its timeout, and every message to arrive within
`max_network_delay`. Durations measured on a node's clock are stretched by
1 / (1 - drift) to bound them in real time.
"""

from dataclasses import dataclass

from failoverd.core.params import CheckSpec, NodeParams
from failoverd.core.types import CheckScope, SafetyMode


@dataclass(frozen=True, slots=True)
class Term:
    what: str
    seconds: float


@dataclass(frozen=True, slots=True)
class Path:
    """One way a failure reaches a takeover, as named steps."""

    name: str
    terms: tuple[Term, ...]

    @property
    def total(self) -> float:
        return sum(t.seconds for t in self.terms)


@dataclass(frozen=True, slots=True)
class Bound:
    paths: tuple[Path, ...]
    drift: float

    @property
    def worst(self) -> Path:
        return max(self.paths, key=lambda p: p.total)

    @property
    def seconds(self) -> float:
        return self.worst.total / (1 - self.drift)


def check_detection(checks: tuple[CheckSpec, ...]) -> float:
    """Time for the slowest check to reach `fall` consecutive failures after the service dies."""
    return max((c.fall * c.interval + c.timeout for c in checks), default=0.0)


def _after_detection(p: NodeParams, delay: float) -> tuple[Term, ...]:
    t = p.timing
    if p.mode is SafetyMode.WITNESS:
        # The lease is acquired once every vote for the old holder has run out;
        # the request is retried every heartbeat interval.
        return (
            Term("vote request retry and round trip", t.heartbeat_interval + 2 * delay),
            Term("startup scripts (sum of timeouts)", p.startup_budget),
        )
    terms = [Term("wait for CONFIRMED (shutdown_timeout)", t.shutdown_timeout)]
    if p.mode is SafetyMode.FENCE:
        terms.append(Term("fence command (its timeout)", p.fence_budget))
    terms.append(Term("startup scripts (sum of timeouts)", p.startup_budget))
    return tuple(terms)


def worst_case(p: NodeParams) -> Bound:
    """The bound for the standby of `p`'s pair; `p` is the standby's own parameters."""
    t = p.timing
    delay = t.max_network_delay
    paths: list[Path] = []

    crash_detect = Term("heartbeats silent for dead_time", t.dead_time + delay)
    if p.mode is SafetyMode.WITNESS:
        # The witness vouches for the dead primary until its relayed word, up to a
        # heartbeat interval and two delays older than it says, has aged past dead_time.
        crash_detect = Term(
            "the witness's word on the primary lapses (dead_time, relayed)",
            t.dead_time + t.heartbeat_interval + 4 * delay,
        )
        lease_out = Term(
            "votes for the old holder run out (vote block)", delay + t.vote_block / (1 - t.drift)
        )
        first = max(crash_detect, lease_out, key=lambda x: x.seconds)
        paths.append(Path("primary host dies", (first, *_after_detection(p, delay))))
    else:
        paths.append(Path("primary host dies", (crash_detect, *_after_detection(p, delay))))

    local = p.checks_of(CheckScope.LOCAL)
    remote = p.checks_of(CheckScope.REMOTE)
    if local:
        detect = Term(
            "primary's own checks reach fall, then one heartbeat",
            check_detection(local) + t.heartbeat_interval + delay,
        )
    elif remote and p.mode is not SafetyMode.WITNESS:
        detect = Term("remote checks reach fall", check_detection(remote))
    else:
        detect = None
    if detect is not None:
        if p.mode is SafetyMode.WITNESS:
            steps = (
                detect,
                Term(
                    "SHUTDOWN_YOUR_SERVICE and the primary's shutdown scripts",
                    delay + p.shutdown_budget,
                ),
                *_after_detection(p, delay),
            )
        else:
            steps = (detect, *_after_detection(p, delay))
        paths.append(Path("primary's service dies", steps))
    return Bound(paths=tuple(paths), drift=t.drift)
