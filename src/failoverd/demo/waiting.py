"""Waiting for a condition with a deadline: the only way the demo and the tests wait."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL = 0.02


class WaitTimeout(Exception):
    """The condition did not hold before the deadline; says what was awaited."""


def wait_for(
    predicate: Callable[[], T | None], timeout: float, what: str, interval: float = POLL
) -> T:
    """Call `predicate` until it returns a true value, and return that value.

    Raises WaitTimeout naming `what` once `timeout` seconds have passed; the
    predicate is always tried at least once, and once more at the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(min(interval, left))
