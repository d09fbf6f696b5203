"""Alerts on transitions and failed scripts: mail over SMTP and a JSON webhook.

`Alerter.submit()` only appends to a bounded queue per channel; one background
task per channel delivers, with retries, exponential backoff and jitter. So a
dead SMTP relay delays neither the webhook nor the caller, and nothing here can
hold up a failover decision. Passwords are read from their file at each attempt
and never logged; webhook URLs are logged as their origin only (their path is
often a token).
"""

import asyncio
import logging
import random
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import aiohttp
import aiosmtplib
from yarl import URL

from failoverd import __version__
from failoverd.config.schema import AlertsSection, MailAlert, WebhookAlert
from failoverd.core.records import Decision
from failoverd.core.types import NodeState
from failoverd.metrics import AlertChannel

SUBJECT_MAX = 200
SMTP_TIMEOUT = 30.0  # per SMTP operation; MailAlert has no timeout of its own


def _now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def _one_line(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert. `kind`: "transition", "script_failed", or a Decision's kind.

    `time` is the wall-clock time of the event (ISO 8601 with offset).
    """

    kind: str
    reason: str
    node: str
    epoch: int
    from_state: NodeState | None = None
    to_state: NodeState | None = None
    time: str = field(default_factory=_now_iso)
    details: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_decision(cls, decision: Decision, kind: str | None = None) -> "Alert":
        """The alert for a core decision, stamped with the wall time of now."""
        return cls(
            kind=kind or ("transition" if decision.is_transition else decision.kind),
            reason=decision.reason,
            node=decision.node,
            epoch=decision.epoch,
            from_state=decision.from_state,
            to_state=decision.to_state,
            details=dict(decision.details),
        )

    @property
    def headline(self) -> str:
        """For a transition `standby -> active`, else the kind in words."""
        if self.from_state is not None and self.to_state is not None:
            return f"{self.from_state} -> {self.to_state}"
        return self.kind.replace("_", " ")

    @property
    def subject(self) -> str:
        """One line, e.g. `[failoverd] cfg2: standby -> active (epoch 7): <reason>`."""
        text = _one_line(
            f"[failoverd] {self.node}: {self.headline} (epoch {self.epoch}): {self.reason}"
        )
        return text if len(text) <= SUBJECT_MAX else text[: SUBJECT_MAX - 1] + "…"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "reason": self.reason,
            "node": self.node,
            "epoch": self.epoch,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "time": self.time,
            "details": dict(self.details),
        }

    def text(self) -> str:
        """The plain-text mail body."""
        lines = [
            f"failoverd on {self.node}: {self.headline} (epoch {self.epoch})",
            "",
            f"Reason: {self.reason}",
            "",
            f"Node:   {self.node}",
            f"Kind:   {self.kind}",
        ]
        if self.from_state is not None and self.to_state is not None:
            lines.append(f"From:   {self.from_state}")
            lines.append(f"To:     {self.to_state}")
        lines += [f"Epoch:  {self.epoch}", f"Time:   {self.time}"]
        if self.details:
            lines += ["", "Details:"] + [f"  {k}: {v}" for k, v in self.details.items()]
        return "\n".join(lines) + "\n"


class DeliveryError(Exception):
    """A channel's endpoint refused an alert (e.g. a webhook answering 500)."""


def safe_url(url: str) -> str:
    """The URL's origin (scheme, host, port): what may appear in logs.

    Webhook paths and queries often carry tokens, and URLs may carry a password.
    """
    return str(URL(url).origin())


ResultCallback = Callable[[str, bool], None]
DropCallback = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class _Policy:
    """What every channel shares: retry policy, queue bound, log and callbacks."""

    attempts: int
    queue_size: int
    backoff: float
    max_backoff: float
    log: logging.Logger
    on_result: ResultCallback | None
    on_drop: DropCallback | None


class _Channel(ABC):
    """One channel: its own bounded queue and task, so channels never wait on each other."""

    name: AlertChannel

    def __init__(self, policy: _Policy) -> None:
        self._p = policy
        self._log = policy.log
        self._queue: deque[Alert] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._current: Alert | None = None
        self.task: asyncio.Task[None] | None = None
        self.dropped = 0

    # -- implemented per channel ---------------------------------------------------------------

    @abstractmethod
    async def send(self, alert: Alert) -> None:
        """One attempt; raises on failure."""

    def redact(self, text: str) -> str:
        """`text` with anything secret about the endpoint removed."""
        return text

    # -- queue and retries ---------------------------------------------------------------------

    def put(self, alert: Alert) -> None:
        if self._closing:
            self._drop(1, "alerter stopped")
            return
        if len(self._queue) >= self._p.queue_size:
            self._queue.popleft()
            self._drop(1, "queue full, oldest alert dropped")
        self._queue.append(alert)
        self._wake.set()

    def _drop(self, count: int, why: str) -> None:
        self.dropped += count
        self._log.warning("alert %s: %d alert(s) not delivered: %s", self.name, count, why)
        if self._p.on_drop is not None:
            for _ in range(count):
                self._call(self._p.on_drop, self.name)

    def _call(self, callback: Callable[..., None], *args: object) -> None:
        try:
            callback(*args)
        except Exception:
            self._log.exception("alert %s: callback failed", self.name)

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"alerts-{self.name}")

    async def _run(self) -> None:
        while True:
            while not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
            self._current = self._queue.popleft()
            await self._deliver(self._current)
            self._current = None

    def _delay(self, attempt: int) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random."""
        ceiling = min(self._p.max_backoff, self._p.backoff * 2.0 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    async def _deliver(self, alert: Alert) -> None:
        for attempt in range(1, self._p.attempts + 1):
            try:
                await self.send(alert)
            except Exception as exc:
                error = self.redact(_one_line(f"{type(exc).__name__}: {exc}".rstrip(": ")))
                if attempt == self._p.attempts:
                    self._log.error(
                        "alert %s failed after %d attempt(s), giving up (%s): %s",
                        self.name,
                        attempt,
                        alert.headline,
                        error,
                    )
                    break
                delay = self._delay(attempt)
                self._log.warning(
                    "alert %s attempt %d/%d failed, retrying in %.1fs: %s",
                    self.name,
                    attempt,
                    self._p.attempts,
                    delay,
                    error,
                )
                await asyncio.sleep(delay)
            else:
                self._log.info("alert %s delivered: %s", self.name, alert.subject)
                self._report(ok=True)
                return
        self._report(ok=False)

    def _report(self, *, ok: bool) -> None:
        if self._p.on_result is not None:
            self._call(self._p.on_result, self.name, ok)

    async def stop(self, drain_timeout: float) -> None:
        self._closing = True
        self._wake.set()
        if self.task is not None:
            _, pending = await asyncio.wait([self.task], timeout=drain_timeout)
            if pending:
                self.task.cancel()
                await asyncio.wait([self.task])
        left = len(self._queue) + (self._current is not None)
        self._queue.clear()
        self._current = None
        if left:
            self._drop(left, "shutting down")


class _Mail(_Channel):
    name = AlertChannel.MAIL

    def __init__(self, cfg: MailAlert, policy: _Policy) -> None:
        super().__init__(policy)
        self._cfg = cfg

    async def send(self, alert: Alert) -> None:
        cfg = self._cfg
        password = None
        if cfg.password_file is not None:
            password = (await asyncio.to_thread(cfg.password_file.read_text)).rstrip("\r\n")
        msg = EmailMessage()
        msg["Subject"] = alert.subject
        msg["From"] = cfg.sender
        msg["To"] = ", ".join(cfg.recipients)
        msg["Date"] = format_datetime(datetime.now().astimezone())
        msg["Message-ID"] = make_msgid("failoverd", domain="failoverd.invalid")
        msg["X-Failoverd-Node"] = alert.node
        msg["X-Failoverd-Epoch"] = str(alert.epoch)
        msg.set_content(alert.text())
        await aiosmtplib.send(
            msg,
            recipients=cfg.recipients,
            hostname=cfg.smtp_host,
            port=cfg.smtp_port,
            username=cfg.user,
            password=password,
            start_tls=cfg.starttls,
            timeout=SMTP_TIMEOUT,
        )


class _Webhook(_Channel):
    name = AlertChannel.WEBHOOK

    def __init__(self, cfg: WebhookAlert, node: str, policy: _Policy) -> None:
        super().__init__(policy)
        self._cfg = cfg
        self._node = node
        self._safe_url = safe_url(cfg.url)
        self._session: aiohttp.ClientSession | None = None

    async def send(self, alert: Alert) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": f"failoverd/{__version__} ({self._node})"},
                timeout=aiohttp.ClientTimeout(total=self._cfg.timeout),
            )
        async with self._session.post(self._cfg.url, json=alert.to_json()) as resp:
            if resp.status >= 300:
                raise DeliveryError(f"{self._safe_url} answered HTTP {resp.status}")

    def redact(self, text: str) -> str:
        for secret in {self._cfg.url, str(URL(self._cfg.url))}:
            text = text.replace(secret, self._safe_url)
        return text

    async def stop(self, drain_timeout: float) -> None:
        await super().stop(drain_timeout)
        if self._session is not None:
            await self._session.close()
            self._session = None


class Alerter:
    """Delivers alerts to every configured channel in the background.

    `on_result(channel, ok)` is called once per alert and channel, after any
    retries; `on_drop(channel)` once per alert dropped undelivered (queue full,
    or still queued at stop). `Metrics.alert_result` and `Metrics.alert_dropped`
    fit them. Use from the event loop's thread.
    """

    def __init__(
        self,
        node: str,
        cfg: AlertsSection,
        log: logging.Logger,
        on_result: ResultCallback | None = None,
        *,
        on_drop: DropCallback | None = None,
        queue_size: int = 100,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
    ) -> None:
        policy = _Policy(1 + cfg.retries, queue_size, backoff, max_backoff, log, on_result, on_drop)
        self._channels: list[_Channel] = []
        if cfg.mail is not None:
            self._channels.append(_Mail(cfg.mail, policy))
        if cfg.webhook is not None:
            self._channels.append(_Webhook(cfg.webhook, node, policy))

    @property
    def channels(self) -> list[str]:
        return [c.name.value for c in self._channels]

    @property
    def dropped(self) -> int:
        """Alerts dropped undelivered, summed over channels."""
        return sum(c.dropped for c in self._channels)

    def submit(self, alert: Alert) -> None:
        """Queues `alert` for every channel. Never blocks, never raises."""
        for channel in self._channels:
            channel.put(alert)

    def start(self) -> None:
        """Starts one delivery task per channel; call from inside the running loop."""
        for channel in self._channels:
            channel.start()

    async def stop(self, drain_timeout: float) -> None:
        """Delivers what is queued for up to `drain_timeout` seconds, then gives up on the rest."""
        await asyncio.gather(*(c.stop(drain_timeout) for c in self._channels))
