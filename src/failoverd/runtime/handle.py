"""What the HTTP API needs from a running daemon (node or witness).

The API runs in its own thread with its own event loop, so that `/health`
keeps answering, and turns 503 when the lease deadline passes, even while the
daemon's main loop is frozen. Everything here is therefore thread-safe:
`health()` and `snapshot()` read values the main loop publishes, and
`operate()` hands the operation to the main loop and waits for its answer.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from failoverd.core.events import Operation


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    reason: str


@dataclass(frozen=True, slots=True)
class OperationResult:
    ok: bool
    message: str


class DaemonHandle(Protocol):
    def health(self) -> Health:
        """200 or 503 for /health, computed from published values and the monotonic clock."""

    def snapshot(self) -> Mapping[str, Any]:
        """The JSON document served at /status (never holds a secret)."""

    def operate(self, op: Operation, timeout: float) -> OperationResult:
        """Run an operator command on the main loop (blocks the API thread, not the daemon)."""

    def history(self, limit: int | None) -> list[dict[str, Any]]:
        """The newest `limit` journal records, oldest first."""

    def explain(self) -> list[str]:
        """Plain sentences: why this node is (not) active right now."""

    def metrics(self, accept: str) -> tuple[bytes, str]:
        """Prometheus exposition (body, content type)."""

    def verify(self, method: str, path: str, body: bytes, header: str | None) -> bool:
        """Whether a control request carries a valid X-Failoverd-Auth header."""
