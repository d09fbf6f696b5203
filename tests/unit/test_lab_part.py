"""LabPart: the lifecycle the lab's Topology and Cluster share (no root needed)."""

import pytest

from failoverd.lab.netns import LabError, LabPart


class Part(LabPart):
    """Records what happened to it; its build fails if told to."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.built = 0
        self.closed = 0

    def _build(self) -> None:
        self.built += 1
        if self.fail:
            raise OSError("no room")

    def close(self) -> None:
        self.closed += 1


def test_a_with_block_builds_and_closes() -> None:
    with Part() as part:
        assert (part.built, part.closed) == (1, 0)
    assert part.closed == 1


def test_a_part_starts_only_once() -> None:
    part = Part().start()
    with pytest.raises(LabError, match="a Part starts only once"):
        part.start()
    assert part.built == 1


def test_a_half_built_part_closes_itself_and_the_error_goes_on() -> None:
    part = Part(fail=True)
    with pytest.raises(OSError, match="no room"):
        part.start()
    assert part.closed == 1
