"""The fault matrix: real daemons, HAProxy and Dovecot in network namespaces (root).

Each case builds a fresh cluster, so a failure leaves nothing behind for the
next. Every scenario runs in witness mode (the recommended one); fence mode
runs every scenario but the lossy link, whose 30 s the witness run already
spends; cooperative mode, which promises no safety, runs the ones where its
failover path differs (no confirmation, a failed shutdown, a frozen active
daemon that obeys late). The long faults are shortened here (30 s
of loss instead of 2 minutes, 20 s of flapping instead of a minute);
`failoverd selftest` runs them in full."""

import pytest

from failoverd.core.types import SafetyMode
from failoverd.lab.scenarios import BY_NAME, SCENARIOS, run_scenario

pytestmark = [pytest.mark.root, pytest.mark.slow]

W, F, C = SafetyMode.WITNESS, SafetyMode.FENCE, SafetyMode.COOPERATIVE

CASES = [
    *((s.name, W) for s in SCENARIOS),
    *((s.name, F) for s in SCENARIOS if s.name != "lossy-link"),
    *(
        (name, C)
        for name in ("primary-killed", "shutdown-hangs", "sigstop-active", "switchover-failback")
    ),
]


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("name", "mode"),
    [pytest.param(n, m, id=f"{m.value}-{n}") for n, m in CASES],
)
def test_scenario(name: str, mode: SafetyMode) -> None:
    result = run_scenario(BY_NAME[name], mode)
    print(
        f"{mode.value} {name}: time to service {result.time_to_service}, "
        f"dual-active {result.dual_active_seconds}s, false failovers {result.false_failovers}, "
        f"longest outage {result.longest_outage}s, took {result.seconds}s; {result.details}"
    )
    assert result.passed, result.details
    if mode is not C:
        assert result.dual_active_seconds == 0
        assert result.false_failovers == 0
