"""The sliding anti-replay window, alone and against a reference model."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from failoverd.replay import ReplayWindow


def accept(window: ReplayWindow, boot: int, counter: int) -> None:
    assert window.check(boot, counter) is None
    window.record(boot, counter)


def test_fresh_window_accepts_any_counter() -> None:
    window = ReplayWindow(8)
    assert window.check(5, 1_000_000) is None


def test_duplicate_is_refused_and_check_does_not_record() -> None:
    window = ReplayWindow(8)
    assert window.check(1, 3) is None
    assert window.check(1, 3) is None  # checking twice records nothing
    window.record(1, 3)
    assert window.check(1, 3) == "counter 3 of boot 1 already seen"


def test_reordering_inside_the_window_is_accepted_once() -> None:
    window = ReplayWindow(8)
    for counter in (5, 2, 4, 1, 3):
        accept(window, 1, counter)
    for counter in range(1, 6):
        assert window.check(1, counter) is not None


def test_window_edge() -> None:
    window = ReplayWindow(8)
    accept(window, 1, 20)
    accept(window, 1, 13)  # 7 behind: the oldest counter the window still tracks
    reason = window.check(1, 12)  # 8 behind: too old to tell
    assert reason is not None and "outside the window of 8" in reason


def test_jump_beyond_the_window_forgets_the_old_bitmap() -> None:
    window = ReplayWindow(8)
    accept(window, 1, 1)
    accept(window, 1, 100)
    for counter in range(93, 100):
        accept(window, 1, counter)
    assert window.check(1, 92) is not None
    assert window.check(1, 100) is not None


def test_lower_boot_is_refused_and_higher_boot_restarts_the_window() -> None:
    window = ReplayWindow(8)
    accept(window, 2, 500)
    assert window.check(1, 501) == "boot 1 is older than boot 2 already seen"
    accept(window, 3, 1)
    assert window.check(2, 501) is not None
    accept(window, 3, 2)


def test_recording_a_replay_is_a_programming_error() -> None:
    window = ReplayWindow(8)
    window.record(1, 1)
    with pytest.raises(ValueError, match="already seen"):
        window.record(1, 1)


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ReplayWindow(0)


def test_size_one_accepts_only_increasing_counters() -> None:
    window = ReplayWindow(1)
    accept(window, 1, 2)
    assert window.check(1, 1) is not None
    assert window.check(1, 2) is not None
    accept(window, 1, 3)


@given(
    size=st.integers(1, 70),
    frames=st.lists(st.tuples(st.integers(0, 3), st.integers(1, 150)), max_size=300),
)
def test_matches_a_reference_model(size: int, frames: list[tuple[int, int]]) -> None:
    """Fresh iff: newer boot, or same boot, not seen and within `size` of the highest."""
    window = ReplayWindow(size)
    boot: int | None = None
    seen: set[int] = set()
    for frame_boot, counter in frames:
        if boot is None or frame_boot > boot:
            fresh = True
        elif frame_boot < boot:
            fresh = False
        else:
            fresh = counter not in seen and counter > max(seen) - size
        assert (window.check(frame_boot, counter) is None) == fresh
        if fresh:
            window.record(frame_boot, counter)
            if boot != frame_boot:
                boot, seen = frame_boot, set()
            seen.add(counter)
