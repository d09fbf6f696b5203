"""Prometheus metrics of one node, served at `GET /metrics`.

Everything lives on a private registry (no global state: several nodes can run
in one test process). Every label value comes either from the configuration
(check names, peer addresses) or from a closed set defined here; values outside
a closed set are counted as `other`, so no input can grow the series count.
"""

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from enum import StrEnum

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.exposition import choose_encoder

from failoverd import __version__, wire
from failoverd.core.types import Cause, CheckScope, NodeState, Preference, SafetyMode, ScriptPhase

PREFIX = "failoverd"

# Loopback and LAN heartbeats: 100 µs to 1 s.
_RTT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_CHECK_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SCRIPT_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class FrameDropReason(StrEnum):
    """Why an incoming wire frame was dropped: one per `failoverd.wire` error."""

    TRUNCATED = "truncated"
    OVERSIZE = "oversize"
    BAD_MAGIC = "bad_magic"
    BAD_VERSION = "bad_version"
    UNKNOWN_KEY = "unknown_key"
    FORGED = "forged"
    MALFORMED = "malformed"
    UNKNOWN_SENDER = "unknown_sender"
    REPLAYED = "replayed"
    STALE = "stale"
    TIMEOUT = "timeout"
    OTHER = "other"


_WIRE_ERRORS: tuple[tuple[type[wire.WireError], FrameDropReason], ...] = (
    (wire.Truncated, FrameDropReason.TRUNCATED),
    (wire.Oversize, FrameDropReason.OVERSIZE),
    (wire.BadMagic, FrameDropReason.BAD_MAGIC),
    (wire.BadVersion, FrameDropReason.BAD_VERSION),
    (wire.UnknownKey, FrameDropReason.UNKNOWN_KEY),
    (wire.BadSignature, FrameDropReason.FORGED),
    (wire.Malformed, FrameDropReason.MALFORMED),
    (wire.UnknownSender, FrameDropReason.UNKNOWN_SENDER),
    (wire.Replayed, FrameDropReason.REPLAYED),
    (wire.Stale, FrameDropReason.STALE),
    (wire.ReadTimeout, FrameDropReason.TIMEOUT),
)


def frame_drop_reason(error: wire.WireError) -> FrameDropReason:
    return next((r for cls, r in _WIRE_ERRORS if isinstance(error, cls)), FrameDropReason.OTHER)


class ScriptOutcome(StrEnum):
    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"


class AlertChannel(StrEnum):
    MAIL = "mail"
    WEBHOOK = "webhook"


def _label(value: str, allowed: type[StrEnum]) -> str:
    """`value` when it is one of `allowed`, else "other": a closed label set stays closed."""
    return value if value in {m.value for m in allowed} else "other"


class LossWindow:
    """Heartbeat loss over the last `size` heartbeats sent to one address.

    A heartbeat counts as lost once it has gone unacknowledged for
    `ack_timeout` seconds; younger unacknowledged ones are in flight and count
    neither way, so a healthy link reads 0 and a dead one reads 1.
    """

    def __init__(self, size: int, ack_timeout: float, clock: Callable[[], float]) -> None:
        self._size = size
        self._ack_timeout = ack_timeout
        self._clock = clock
        self._sent: OrderedDict[int, float | None] = OrderedDict()  # seq -> sent at, None if acked

    def sent(self, seq: int) -> None:
        self._sent[seq] = self._clock()
        self._sent.move_to_end(seq)
        while len(self._sent) > self._size:
            self._sent.popitem(last=False)

    def acked(self, seq: int) -> bool:
        """Marks `seq` acknowledged; False for an unknown, evicted or duplicate ack."""
        if self._sent.get(seq) is None:
            return False
        self._sent[seq] = None
        return True

    def ratio(self) -> float:
        """Lost / settled heartbeats in the window; NaN before any has settled."""
        deadline = self._clock() - self._ack_timeout
        lost = settled = 0
        for sent_at in self._sent.values():
            if sent_at is None:
                settled += 1
            elif sent_at <= deadline:
                settled += 1
                lost += 1
        return lost / settled if settled else math.nan


class Metrics:
    """The node's metrics; the runtime calls the methods below as things happen.

    Call from the event loop's thread (the loss windows are not locked).
    `heartbeat_ack_timeout` should be about `timing.dead_time`.
    """

    def __init__(
        self,
        node: str,
        *,
        loss_window: int = 100,
        heartbeat_ack_timeout: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node = node
        self._loss_window = loss_window
        self._ack_timeout = heartbeat_ack_timeout
        self._clock = clock
        self._windows: dict[str, LossWindow] = {}
        self.registry = r = CollectorRegistry(auto_describe=True)

        self._info = Gauge(
            f"{PREFIX}_node_info",
            "This node: name, configured preference and version (value 1).",
            ["node", "preference", "version"],
            registry=r,
        )
        self._state = Gauge(
            f"{PREFIX}_state",
            "1 for the node's current state, 0 for the others.",
            ["state"],
            registry=r,
        )
        self._safety = Gauge(
            f"{PREFIX}_safety_mode",
            "1 for the safety mode in force, 0 for the others.",
            ["mode"],
            registry=r,
        )
        self._maintenance = Gauge(
            f"{PREFIX}_maintenance", "1 while in maintenance (watch, never act).", registry=r
        )
        self._epoch = Gauge(f"{PREFIX}_epoch", "Highest epoch known to this node.", registry=r)

        check_labels = ["check", "scope"]
        self._check_up = Gauge(
            f"{PREFIX}_check_up",
            "Result of the check's last run (1 pass, 0 fail).",
            check_labels,
            registry=r,
        )
        self._check_latency = Histogram(
            f"{PREFIX}_check_latency_seconds",
            "Duration of check runs.",
            check_labels,
            buckets=_CHECK_BUCKETS,
            registry=r,
        )
        self._check_failures = Gauge(
            f"{PREFIX}_check_consecutive_failures",
            "Failures in a row of the check.",
            check_labels,
            registry=r,
        )

        self._hb_sent = Counter(
            f"{PREFIX}_heartbeats_sent",
            "Heartbeats sent, per peer address.",
            ["address"],
            registry=r,
        )
        self._hb_acked = Counter(
            f"{PREFIX}_heartbeats_acked",
            "Heartbeats acknowledged, per peer address.",
            ["address"],
            registry=r,
        )
        self._hb_rtt = Histogram(
            f"{PREFIX}_heartbeat_rtt_seconds",
            "Heartbeat round-trip time per peer address.",
            ["address"],
            buckets=_RTT_BUCKETS,
            registry=r,
        )
        self._hb_loss = Gauge(
            f"{PREFIX}_heartbeat_loss_ratio",
            f"Share of the last {loss_window} heartbeats to the address that went "
            f"unacknowledged for {heartbeat_ack_timeout}s (NaN until one has).",
            ["address"],
            registry=r,
        )

        self._failovers = Counter(
            f"{PREFIX}_failovers", "Takeovers and releases, by reason.", ["reason"], registry=r
        )
        self._failover_duration = Gauge(
            f"{PREFIX}_last_failover_duration_seconds",
            "Duration of the last failover (decision to last startup script done).",
            registry=r,
        )
        self._lag = Gauge(
            f"{PREFIX}_event_loop_last_lag_seconds", "Last measured event-loop lag.", registry=r
        )
        self._lag_hist = Histogram(
            f"{PREFIX}_event_loop_lag_seconds",
            "Event-loop lag measurements.",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self._lease_left = Gauge(
            f"{PREFIX}_lease_remaining_seconds",
            "Time left on the lease (NaN without a lease).",
            registry=r,
        )
        self._lease_left.set(math.nan)

        self._alerts_sent = Counter(
            f"{PREFIX}_alerts_sent", "Alerts delivered, by channel.", ["channel"], registry=r
        )
        self._alerts_failed = Counter(
            f"{PREFIX}_alerts_failed",
            "Alerts given up after every retry, by channel.",
            ["channel"],
            registry=r,
        )
        self._alerts_dropped = Counter(
            f"{PREFIX}_alerts_dropped",
            "Alerts dropped undelivered (queue full or shutdown).",
            ["channel"],
            registry=r,
        )
        self._scripts = Counter(
            f"{PREFIX}_script_runs",
            "Script runs, by phase and outcome.",
            ["phase", "outcome"],
            registry=r,
        )
        self._script_duration = Histogram(
            f"{PREFIX}_script_duration_seconds",
            "Script run times, by phase.",
            ["phase"],
            buckets=_SCRIPT_BUCKETS,
            registry=r,
        )
        self._frames_dropped = Counter(
            f"{PREFIX}_frames_dropped",
            "Incoming wire frames dropped, by reason.",
            ["reason"],
            registry=r,
        )

    # -- identity and state ------------------------------------------------------------------

    def set_preference(self, preference: Preference) -> None:
        """At start and after a reload."""
        self._info.clear()
        self._info.labels(self.node, preference.value, __version__).set(1)

    def set_state(self, state: NodeState) -> None:
        for s in NodeState:
            self._state.labels(s.value).set(1 if s is state else 0)

    def set_safety_mode(self, mode: SafetyMode) -> None:
        for m in SafetyMode:
            self._safety.labels(m.value).set(1 if m is mode else 0)

    def set_maintenance(self, on: bool) -> None:
        self._maintenance.set(1 if on else 0)

    def set_epoch(self, epoch: int) -> None:
        self._epoch.set(epoch)

    def set_lease_remaining(self, seconds: float | None) -> None:
        """None when the node holds no lease."""
        self._lease_left.set(math.nan if seconds is None else max(seconds, 0.0))

    # -- checks, heartbeats, loop ------------------------------------------------------------

    def check_result(
        self, name: str, scope: CheckScope, ok: bool, latency: float, consecutive_failures: int
    ) -> None:
        """After every run of a configured check."""
        labels = (name, scope.value)
        self._check_up.labels(*labels).set(1 if ok else 0)
        self._check_latency.labels(*labels).observe(latency)
        self._check_failures.labels(*labels).set(consecutive_failures)

    def forget_check(self, name: str, scope: CheckScope) -> None:
        """After a reload removed the check, so that its series go away."""
        for metric in (self._check_up, self._check_latency, self._check_failures):
            metric.remove(name, scope.value)

    def heartbeat_sent(self, address: str, seq: int) -> None:
        """For each heartbeat sent to one of the peer's configured addresses."""
        window = self._windows.get(address)
        if window is None:
            window = self._windows[address] = LossWindow(
                self._loss_window, self._ack_timeout, self._clock
            )
            self._hb_loss.labels(address).set_function(window.ratio)
        window.sent(seq)
        self._hb_sent.labels(address).inc()

    def heartbeat_acked(self, address: str, seq: int, rtt: float) -> None:
        """For each acknowledgement; duplicates and acks of unknown heartbeats are ignored."""
        window = self._windows.get(address)
        if window is None or not window.acked(seq):
            return
        self._hb_acked.labels(address).inc()
        self._hb_rtt.labels(address).observe(rtt)

    def loop_lag(self, seconds: float) -> None:
        """Each time the runtime measures how late a timer woke up."""
        self._lag.set(seconds)
        self._lag_hist.observe(seconds)

    # -- events ------------------------------------------------------------------------------

    def failover_started(self, cause: Cause | str) -> None:
        """When a takeover begins, by the core's cause; anything else counts as other."""
        self._failovers.labels(_label(cause, Cause)).inc()

    def failover_finished(self, duration: float) -> None:
        """When the takeover's last startup script is done: seconds since the decision."""
        self._failover_duration.set(duration)

    def script_finished(self, phase: ScriptPhase, outcome: ScriptOutcome, duration: float) -> None:
        self._scripts.labels(phase.value, outcome.value).inc()
        self._script_duration.labels(phase.value).observe(duration)

    def frame_dropped(self, reason: wire.WireError | FrameDropReason | str) -> None:
        """For each incoming frame refused: pass the wire error, or a FrameDropReason."""
        if isinstance(reason, wire.WireError):
            reason = frame_drop_reason(reason)
        self._frames_dropped.labels(_label(reason, FrameDropReason)).inc()

    def alert_result(self, channel: str, ok: bool) -> None:
        """Fits `Alerter(on_result=...)`: one call per alert and channel, after any retries."""
        (self._alerts_sent if ok else self._alerts_failed).labels(
            _label(channel, AlertChannel)
        ).inc()

    def alert_dropped(self, channel: str) -> None:
        """Fits `Alerter(on_drop=...)`."""
        self._alerts_dropped.labels(_label(channel, AlertChannel)).inc()

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """Body and Content-Type of the answer to `GET /metrics`.

        `accept` is the request's Accept header: OpenMetrics when the scraper asks
        for it, else the classic text format.
        """
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
