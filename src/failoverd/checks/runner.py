"""Runs every check on its own interval and reports each outcome.

Rise/fall counting is not done here: the core does it from the reported
outcomes. A check's runs never overlap: the next run starts at the previous
scheduled start plus the interval, and slots missed by an overrun are skipped
rather than run in a burst.
"""

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable

from failoverd.checks.base import Check, CheckOutcome

logger = logging.getLogger(__name__)

ResultCallback = Callable[[str, CheckOutcome], None]


def next_start(scheduled: float, interval: float, now: float) -> float:
    """The first slot `scheduled + k*interval` (k >= 1) that is not in the past at `now`."""
    slot = scheduled + interval
    if slot < now:
        slot += math.ceil((now - slot) / interval) * interval
    return slot


class CheckRunner:
    """Runs `checks` concurrently, each on its own interval, reporting to `on_result`.

    `clock` is the clock the schedule is computed on; the waits are asyncio
    sleeps, so it must run at the event loop's pace (the default is the loop's).
    """

    def __init__(
        self,
        checks: Iterable[Check],
        on_result: ResultCallback,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._checks = list(checks)
        self._on_result = on_result
        self._clock = clock
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start one task per check (needs a running event loop)."""
        if self._tasks:
            raise RuntimeError("CheckRunner already started")
        self._tasks = [
            asyncio.create_task(self._loop(check), name=f"check {check.name}")
            for check in self._checks
        ]

    async def stop(self) -> None:
        """Cancel every check's task, wait for them, and close the checks."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        results = await asyncio.gather(
            *(check.close() for check in self._checks), return_exceptions=True
        )
        for check, result in zip(self._checks, results, strict=True):
            if isinstance(result, Exception):
                logger.warning("check %s: close failed: %s", check.name, result)

    async def _loop(self, check: Check) -> None:
        interval = check.spec.interval
        scheduled = self._clock()
        while True:
            outcome = await check.run()
            try:
                self._on_result(check.name, outcome)
            except Exception:
                logger.exception("check %s: result callback failed", check.name)
            scheduled = next_start(scheduled, interval, self._clock())
            await asyncio.sleep(max(0.0, scheduled - self._clock()))
