"""`failoverd explain`: why this node is, or is not, active right now, in plain words."""

from failoverd.core.node import NodeStatus
from failoverd.core.types import NodeState, SafetyMode

_STATE = {
    NodeState.STARTING: "is starting: it waits to hear its peer before it judges anything",
    NodeState.STANDBY: "is standby: its services are stopped",
    NodeState.TAKING_OVER: "is taking over",
    NodeState.ACTIVE: "is active: it runs the service",
    NodeState.RELEASING: "is releasing: its shutdown (or demote) scripts are running",
    NodeState.FAILED: "is failed: a script failed and nothing will be done until an operator "
    "has looked (`failoverd maintenance off` clears it)",
}


def _checks(rows: tuple[tuple[str, bool | None, str], ...]) -> str:
    return ", ".join(
        f"{name} {'up' if up else 'down' if up is False else 'unknown'}"
        + (f" ({detail})" if up is False and detail else "")
        for name, up, detail in rows
    )


def explain(st: NodeStatus, now: float) -> list[str]:
    out = [f"{st.name} {_STATE[st.state]} (epoch {st.epoch}, safety mode {st.mode})."]
    if st.last_transition:
        out.append(f"Last transition: {st.last_transition}.")
    if st.maintenance:
        out.append("Maintenance mode is on: it watches and reports but never acts.")
    if st.takeover_phase:
        out.append(f"The takeover is at the step: {st.takeover_phase.replace('_', ' ')}.")
    if st.state is NodeState.ACTIVE:
        if st.mode is SafetyMode.WITNESS:
            if st.lease_until is None or st.lease_until <= now:
                out.append("It holds no valid lease: /health answers 503.")
            else:
                voters = ", ".join(st.lease_voters) or "nobody"
                out.append(
                    f"Its lease is valid for {st.lease_until - now:.2f}s more "
                    f"(granted by {voters})."
                )
        out.append(
            "/health answers 200."
            if st.healthy
            else "/health answers 503: a local check is down or the lease ran out."
        )
        if st.local_checks:
            out.append(f"Local checks: {_checks(st.local_checks)}.")
    if st.peer_state is None:
        out.append(f"Its peer {st.peer_name} has not been heard since this daemon started.")
    else:
        age = f"{st.peer_age:.2f}s ago" if st.peer_age is not None else "never"
        ok = "passing" if st.peer_checks_ok else "FAILING"
        out.append(
            f"Its peer {st.peer_name} was last heard {age}: {st.peer_state} at epoch "
            f"{st.peer_epoch}, its own checks {ok}"
            + (", in maintenance" if st.peer_maintenance else "")
            + "."
        )
    if st.remote_checks and st.peer_state is NodeState.ACTIVE:
        out.append(f"Remote checks of {st.peer_name}: {_checks(st.remote_checks)}.")
    if st.witness_view is not None:
        w = st.witness_view
        out.append(
            f"The witness last heard {w.node} {w.age:.2f}s before its last answer: {w.state}, "
            f"checks {'passing' if w.checks_ok else 'FAILING'}."
        )
    elif st.mode is SafetyMode.WITNESS and st.state is not NodeState.ACTIVE:
        out.append("The witness has given no view of the peer yet.")
    return out
