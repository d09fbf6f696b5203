"""Anti-replay state for one sender: its boot number and a sliding counter window.

Like IPsec's window: the highest counter seen in the current boot, and a bitmap
of which of the `size` counters up to it have been seen. Counters above the
highest are new; counters inside the window are new once; counters below it
are too old to tell, so they are refused. UDP may reorder heartbeats; the
window tolerates that up to `size` frames.

A sender's boot number increases at each of its starts and its counter starts
again at 1, so a lower boot is a replay and a higher one starts a new window.

Checking and recording are separate on purpose: the caller records a frame
only once it is fully validated, so a frame that fails later checks does not
move the window.
"""


class ReplayWindow:
    """Which (boot, counter) pairs one sender has used; see the module docstring."""

    __slots__ = ("_boot", "_highest", "_mask", "_seen", "size")

    def __init__(self, size: int = 256) -> None:
        if size < 1:
            raise ValueError(f"replay window size must be at least 1, not {size}")
        self.size = size
        self._mask = (1 << size) - 1
        self._boot: int | None = None
        self._highest = 0
        # Bit i set: counter `_highest - i` has been seen in boot `_boot`.
        self._seen = 0

    def __repr__(self) -> str:
        return f"ReplayWindow(size={self.size}, boot={self._boot}, highest={self._highest})"

    def check(self, boot: int, counter: int) -> str | None:
        """None if (boot, counter) has not been seen; otherwise why it is a replay.

        Does not change the state.
        """
        if self._boot is None or boot > self._boot:
            return None
        if boot < self._boot:
            return f"boot {boot} is older than boot {self._boot} already seen"
        if counter > self._highest:
            return None
        behind = self._highest - counter
        if behind >= self.size:
            return (
                f"counter {counter} is {behind} behind the highest seen ({self._highest}), "
                f"outside the window of {self.size}"
            )
        if self._seen >> behind & 1:
            return f"counter {counter} of boot {boot} already seen"
        return None

    def record(self, boot: int, counter: int) -> None:
        """Mark (boot, counter) as seen. Call only once the frame is fully validated."""
        # A new boot, or a counter above the highest, is never a replay: no need to check.
        if self._boot is None or boot > self._boot:
            self._boot, self._highest, self._seen = boot, counter, 1
        elif boot == self._boot and counter > self._highest:
            ahead = counter - self._highest
            self._seen = 1 if ahead >= self.size else (self._seen << ahead | 1) & self._mask
            self._highest = counter
        else:
            reason = self.check(boot, counter)
            if reason is not None:
                raise ValueError(f"recording a replayed frame: {reason}")
            self._seen |= 1 << (self._highest - counter)
