"""A lease voter: the witness, and each node for its peer and for itself.

A voter that granted its vote to a candidate refuses every other candidate
until the grant has run out on the voter's own clock, stretched for clock-rate
drift (`params.vote_block`). A voter that (re)started grants nothing until one
such block has passed, because it has forgotten whom it voted for.
"""

from dataclasses import dataclass

from failoverd.core.params import vote_block


@dataclass(frozen=True, slots=True)
class Verdict:
    granted: bool
    refusal: str = ""


GRANTED = Verdict(True)


class Voter:
    def __init__(self, drift: float, margin: float, booted_at: float) -> None:
        self.drift = drift
        self.margin = margin
        self.booted_at = booted_at
        self.holder: str | None = None
        self.holder_epoch = 0
        self.until = booted_at
        self.max_epoch = 0
        self._released: dict[str, int] = {}

    def block(self, lease_time: float) -> float:
        return vote_block(lease_time, self.drift, self.margin)

    def consider(self, candidate: str, epoch: int, lease_time: float, now: float) -> Verdict:
        block = self.block(lease_time)
        quiet_until = self.booted_at + block
        if now < quiet_until:
            return Verdict(
                False, f"restarted recently: grants nothing for {quiet_until - now:.2f}s"
            )
        if epoch <= self._released.get(candidate, 0):
            return Verdict(False, f"{candidate} already released epoch {epoch}")
        held = self.holder is not None and now < self.until
        if held and self.holder != candidate:
            return Verdict(
                False,
                f"vote held by {self.holder} (epoch {self.holder_epoch}) "
                f"for {self.until - now:.2f}s more",
            )
        renewal = held and self.holder == candidate and epoch == self.holder_epoch
        if epoch < self.max_epoch and not renewal:
            return Verdict(False, f"epoch {epoch} is older than epoch {self.max_epoch}")
        self.holder, self.holder_epoch = candidate, epoch
        self.until = now + block
        self.max_epoch = max(self.max_epoch, epoch)
        return GRANTED

    def release(self, candidate: str, epoch: int) -> bool:
        """The candidate has stopped its services for `epoch` and all before it.

        True when this freed a current grant.
        """
        if epoch <= self._released.get(candidate, 0):
            return False
        self._released[candidate] = epoch
        if self.holder == candidate and self.holder_epoch <= epoch:
            self.holder = None
            return True
        return False

    def released(self, candidate: str) -> int:
        """The highest epoch `candidate` has released here (0: none); it gets no vote up to it."""
        return self._released.get(candidate, 0)

    def held_by(self, now: float) -> str | None:
        return self.holder if self.holder is not None and now < self.until else None
