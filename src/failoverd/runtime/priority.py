"""Real-time scheduling and locked memory for the daemon, as corosync does.

On an overloaded or swapping host a normal process waits for the CPU or for
its pages to come back from swap. For failoverd a wait of a few seconds is
an outage: the active node misses its lease renewal and self-demotes, or
`/health` is slow and the load balancer drops the service. So the daemon
runs its event loop and its API thread under SCHED_RR and locks its memory.

Neither is passed on. SCHED_RESET_ON_FORK makes every process the daemon
starts (scripts, check commands, and the service they start) and every
thread created later (executor threads for slow reads) begin under the
normal scheduler. mlockall's locks are not inherited by fork and end at
exec. MCL_ONFAULT locks pages as they are first used, so that thread stacks
and allocator arenas are not filled in up front.

A host that refuses either (no root, no CAP_SYS_NICE or CAP_IPC_LOCK, a
container without a real-time budget) still runs the daemon: the caller
logs the refusal with its fix, and the daemon goes on without.
"""

import ctypes
import os
from collections.abc import Sequence
from dataclasses import dataclass

_MCL_CURRENT = 1
_MCL_FUTURE = 2
_MCL_ONFAULT = 4  # Linux 4.4 and later


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one request to the kernel asked for (`what`), and why it was refused
    (`error`, with the `fix` for the log), if it was."""

    what: str
    error: OSError | None = None
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


def raise_priority(priority: int, threads: Sequence[int] = ()) -> Outcome:
    """SCHED_RR at `priority` (1-99) for the calling thread and the `threads` (their
    native ids), reset on fork; `priority` 0 leaves the normal scheduler."""
    if priority == 0:
        return Outcome("normal scheduler (node.realtime_priority = 0)")
    policy = os.SCHED_RR | os.SCHED_RESET_ON_FORK
    param = os.sched_param(priority)
    try:
        for tid in (0, *threads):
            os.sched_setscheduler(tid, policy, param)
    except OSError as exc:
        return Outcome(
            f"SCHED_RR priority {priority}",
            exc,
            "run the daemon as root (CAP_SYS_NICE), or set node.realtime_priority = 0",
        )
    return Outcome(
        f"SCHED_RR priority {priority} for the event loop and the API "
        "(scripts, checks and the service run under the normal scheduler)"
    )


def lock_memory(enabled: bool) -> Outcome:
    """mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) when `enabled`."""
    if not enabled:
        return Outcome("memory not locked (node.lock_memory = false)")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mlockall(_MCL_CURRENT | _MCL_FUTURE | _MCL_ONFAULT) != 0:
        errno = ctypes.get_errno()
        return Outcome(
            "locked memory (mlockall)",
            OSError(errno, os.strerror(errno)),
            "run the daemon as root (CAP_IPC_LOCK), or set node.lock_memory = false",
        )
    return Outcome("memory locked (mlockall: never swapped out)")
