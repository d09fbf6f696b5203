"""Rise/fall counting for health checks: a check is up after `rise` consecutive
passes and down after `fall` consecutive failures; until then it is unknown."""

from dataclasses import dataclass

from failoverd.core.params import CheckSpec


@dataclass(slots=True)
class CheckTracker:
    spec: CheckSpec
    up: bool | None = None
    passes: int = 0
    failures: int = 0
    detail: str = ""

    def record(self, ok: bool, detail: str) -> bool:
        """Count one result; True when the check's up/down verdict changed."""
        self.detail = detail
        if ok:
            self.passes, self.failures = self.passes + 1, 0
            verdict = True if self.passes >= self.spec.rise else self.up
        else:
            self.passes, self.failures = 0, self.failures + 1
            verdict = False if self.failures >= self.spec.fall else self.up
        changed = verdict != self.up
        self.up = verdict
        return changed

    def reset(self) -> None:
        self.up, self.passes, self.failures, self.detail = None, 0, 0, ""


class CheckSet:
    """The trackers of one scope (local or remote)."""

    def __init__(self, specs: tuple[CheckSpec, ...]) -> None:
        self.trackers = {s.name: CheckTracker(s) for s in specs}

    def record(self, name: str, ok: bool, detail: str) -> CheckTracker | None:
        """The tracker if its verdict changed, else None (unknown names are ignored)."""
        tracker = self.trackers.get(name)
        if tracker is None or not tracker.record(ok, detail):
            return None
        return tracker

    def down(self) -> tuple[CheckTracker, ...]:
        return tuple([t for t in self.trackers.values() if t.up is False])

    @property
    def ok(self) -> bool:
        """No check is down (unknown counts as not failing)."""
        # (A loop, not all() over a generator: the core asks on nearly every event.)
        for t in self.trackers.values():  # noqa: SIM110
            if t.up is False:
                return False
        return True

    def reset(self) -> None:
        for t in self.trackers.values():
            t.reset()

    def describe_down(self) -> str:
        return "; ".join(
            f"{t.spec.name} failed {t.failures} times ({t.detail})" for t in self.down()
        )
