"""The lease keeps its end precomputed: after any sequence of changes it must say
what a recomputation from all the grants says (a model kept alongside)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from failoverd.core.lease import Lease

VOTERS = ("a", "b", "c")

OPS = st.one_of(
    st.tuples(st.just("start"), st.integers(0, 4)),
    st.tuples(
        st.just("grant"),
        st.sampled_from((*VOTERS, "stranger")),
        st.integers(0, 4),
        st.floats(min_value=-5.0, max_value=50.0, allow_nan=False),
    ),
    st.tuples(st.just("drop")),
    st.tuples(st.just("lease_time"), st.floats(min_value=0.1, max_value=10.0)),
)


def model_until(expiry: dict[str, float], voters: tuple[str, ...]) -> float | None:
    ends = sorted(expiry.values(), reverse=True)
    majority = len(voters) // 2 + 1
    return ends[majority - 1] if len(ends) >= majority else None


@settings(max_examples=500, deadline=None)
@given(
    st.integers(1, 3).map(lambda n: VOTERS[:n]),
    st.lists(OPS, max_size=60),
    st.floats(min_value=-5.0, max_value=60.0, allow_nan=False),
)
def test_the_precomputed_end_matches_a_recomputation(
    voters: tuple[str, ...], ops: list[tuple[object, ...]], now: float
) -> None:
    lease = Lease(voters, 2.0)
    epoch, lease_time = 0, 2.0
    expiry: dict[str, float] = {}
    for op in ops:
        match op:
            case ("start", int(e)):
                lease.start(e)
                if e != epoch:
                    epoch = e
                    expiry.clear()
            case ("grant", str(voter), int(e), float(sent)):
                lease.grant(voter, e, sent)
                if voter in voters and e == epoch:
                    end = sent + lease_time
                    expiry[voter] = max(end, expiry.get(voter, end))
            case ("drop",):
                lease.drop()
                expiry.clear()
            case ("lease_time", float(t)):
                lease.lease_time = lease_time = t
        until = model_until(expiry, voters)
        assert lease.valid_until() == until
        assert lease.holds(now) == (until is not None and now < until)
        assert lease.granted_by(now) == tuple(sorted(v for v, e in expiry.items() if e > now))
    assert lease.majority == len(voters) // 2 + 1
