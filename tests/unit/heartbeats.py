"""Heartbeats for the core's unit tests: a healthy peer that asks for nothing."""

from failoverd.core.messages import Heartbeat
from failoverd.core.types import NodeState, Preference


def healthy_heartbeat(
    sender: str,
    state: NodeState,
    epoch: int,
    preference: Preference,
    lease_time: float,
    sent_at: float,
) -> Heartbeat:
    """`sender`'s heartbeat with its checks passing, out of maintenance, asking no lease,
    and, at `epoch`, holding (or having held) the lease of that epoch."""
    return Heartbeat(
        sender=sender,
        state=state,
        epoch=epoch,
        preference=preference,
        checks_ok=True,
        failing_checks=(),
        maintenance=False,
        lease_request=False,
        lease_epoch=epoch,
        lease_time=lease_time,
        released_epoch=0,
        sent_at=sent_at,
    )
