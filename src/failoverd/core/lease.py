"""The lease as its holder sees it: a majority of voters granted their vote.

Each grant is counted from the moment the holder *sent* the request, on its own
clock (the voter echoes that time back), so that delays only ever shorten the
lease the holder believes it has, never lengthen it.

The holder asks when its lease ends far more often than a grant arrives, so
the end is recomputed by every change to the grants (`_changed`) and read as is.
"""


class Lease:
    def __init__(self, voters: tuple[str, ...], lease_time: float) -> None:
        self._voters = voters
        self._majority = len(voters) // 2 + 1
        self.lease_time = lease_time
        self.epoch = 0
        self._expiry: dict[str, float] = {}
        self._until: float | None = None

    @property
    def voters(self) -> tuple[str, ...]:
        return self._voters

    @property
    def majority(self) -> int:
        return self._majority

    def _changed(self) -> None:
        """Recompute the end of the lease; every change to `_expiry` calls this."""
        ends = sorted(self._expiry.values(), reverse=True)
        self._until = ends[self._majority - 1] if len(ends) >= self._majority else None

    def start(self, epoch: int) -> None:
        """Collect votes for a new epoch; grants for another epoch no longer count."""
        if epoch != self.epoch:
            self.epoch = epoch
            self._expiry.clear()
            self._changed()

    def grant(self, voter: str, epoch: int, request_sent_at: float) -> None:
        if voter in self._voters and epoch == self.epoch:
            expiry = request_sent_at + self.lease_time
            self._expiry[voter] = max(expiry, self._expiry.get(voter, expiry))
            self._changed()

    def valid_until(self) -> float | None:
        """When the lease ends: the majority-th latest grant; None with too few grants."""
        return self._until

    def holds(self, now: float) -> bool:
        end = self._until
        return end is not None and now < end

    def granted_by(self, now: float) -> tuple[str, ...]:
        return tuple(sorted(v for v, e in self._expiry.items() if e > now))

    def drop(self) -> None:
        self._expiry.clear()
        self._changed()
