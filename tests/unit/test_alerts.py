"""Alerts against real servers: aiosmtpd for mail, an aiohttp server for the webhook."""

import asyncio
import logging
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from failoverd.alerts import Alert, Alerter, safe_url
from failoverd.config.schema import AlertsSection, MailAlert, WebhookAlert
from failoverd.core.records import Decision
from failoverd.core.types import NodeState
from failoverd.metrics import Metrics

REASON = "primary's pop3 check failed 3 times"
TOKEN = "T0KEN-in-the-path"
PASSWORD = "s3cret-smtp-pw"
LOG = logging.getLogger("test.alerts")


def transition(reason: str = REASON) -> Alert:
    decision = Decision(
        at=12.5,
        node="cfg2",
        kind="transition",
        reason=reason,
        epoch=7,
        from_state=NodeState.STANDBY,
        to_state=NodeState.ACTIVE,
        details=(("check", "pop3"), ("failures", "3")),
    )
    return Alert.from_decision(decision)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def refusing_port() -> Iterator[int]:
    """A bound TCP port nobody listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


@contextmanager
def silent_port() -> Iterator[int]:
    """A listening TCP port that never answers: an SMTP client waits for a banner."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            msg = message_from_bytes(envelope.original_content, policy=policy.default)
            assert isinstance(msg, EmailMessage)  # what policy.default parses into
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 OK"


def check_password(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
    ok = (auth.login, auth.password) == (b"alice", PASSWORD.encode())
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 235/535


@contextmanager
def smtp_server(auth: bool = False) -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    port = free_port()
    kwargs: dict[str, Any] = {"authenticator": check_password, "auth_require_tls": False}
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, **(kwargs if auth else {}))
    ctl.start()
    try:
        yield port, inbox
    finally:
        ctl.stop()


@asynccontextmanager
async def webhook_server(statuses: list[int] | None = None) -> AsyncIterator[tuple[str, list[Any]]]:
    """Answers each POST with the next status of `statuses` (200 once they run out)."""
    received: list[Any] = []
    pending = list(statuses or [])

    async def handle(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=pending.pop(0) if pending else 200)

    app = web.Application()
    app.router.add_post(f"/hook/{TOKEN}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook/{TOKEN}", received
    finally:
        await runner.cleanup()


class Results:
    """Collects on_result/on_drop calls; wait() returns the next one or fails at a deadline."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
        self.dropped: list[str] = []

    def on_result(self, channel: str, ok: bool) -> None:
        self.queue.put_nowait((channel, ok))

    def on_drop(self, channel: str) -> None:
        self.dropped.append(channel)

    async def wait(self, count: int = 1, timeout: float = 10.0) -> list[tuple[str, bool]]:
        async with asyncio.timeout(timeout):
            return [await self.queue.get() for _ in range(count)]


def mail_cfg(port: int, **kw: Any) -> MailAlert:
    return MailAlert(
        smtp_host="127.0.0.1",
        smtp_port=port,
        sender="failoverd@example.test",
        recipients=["ops@example.test", "oncall@example.test"],
        **kw,
    )


def alerter(cfg: AlertsSection, results: Results, **kw: Any) -> Alerter:
    return Alerter("cfg2", cfg, LOG, results.on_result, on_drop=results.on_drop, backoff=0.01, **kw)


@asynccontextmanager
async def running(a: Alerter) -> AsyncIterator[Alerter]:
    """Started, and stopped even when the test fails (stop() may be called again)."""
    a.start()
    try:
        yield a
    finally:
        await a.stop(drain_timeout=0)


def test_alert_from_decision() -> None:
    alert = transition()
    assert alert.subject == f"[failoverd] cfg2: standby -> active (epoch 7): {REASON}"
    assert alert.kind == "transition"
    assert alert.details == {"check": "pop3", "failures": "3"}
    assert alert.to_json()["to_state"] == "active"


def test_subject_is_one_bounded_line() -> None:
    alert = transition("first line\r\nBcc: victim@example.test\n" + "x" * 500)
    assert "\n" not in alert.subject and "\r" not in alert.subject
    assert len(alert.subject) == 200
    assert alert.subject.endswith("…")


def test_mail_reaches_a_real_smtp_server_with_the_reason() -> None:
    async def main() -> None:
        with smtp_server() as (port, inbox):
            results = Results()
            async with running(alerter(AlertsSection(mail=mail_cfg(port)), results)) as a:
                a.submit(transition())
                assert await results.wait() == [("mail", True)]
        [(sender, rcpts, msg)] = inbox.messages
        assert sender == "failoverd@example.test"
        assert rcpts == ["ops@example.test", "oncall@example.test"]
        assert msg["Subject"] == f"[failoverd] cfg2: standby -> active (epoch 7): {REASON}"
        body = msg.get_content()
        for text in (f"Reason: {REASON}", "From:   standby", "To:     active", "Epoch:  7"):
            assert text in body
        assert "Node:   cfg2" in body
        assert "check: pop3" in body
        assert transition().time[:10] in body  # the date of the event

    asyncio.run(main())


def test_mail_with_smtp_auth_reads_the_password_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text(PASSWORD + "\n")
    bad.write_text("wrong-" + PASSWORD)

    async def main() -> None:
        with smtp_server(auth=True) as (port, inbox):
            for pw_file, expect in ((good, True), (bad, False)):
                results = Results()
                mail = mail_cfg(port, user="alice", password_file=pw_file)
                async with running(alerter(AlertsSection(mail=mail, retries=0), results)) as a:
                    a.submit(transition())
                    assert await results.wait() == [("mail", expect)]
            assert len(inbox.messages) == 1

    with caplog.at_level(logging.INFO, logger=LOG.name):
        asyncio.run(main())
    failures = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1
    assert "535" in failures[0]
    assert PASSWORD not in caplog.text


def test_starttls_required_but_not_offered_sends_nothing() -> None:
    async def main() -> None:
        with smtp_server() as (port, inbox):
            results = Results()
            cfg = AlertsSection(mail=mail_cfg(port, starttls=True), retries=0)
            async with running(alerter(cfg, results)) as a:
                a.submit(transition())
                assert await results.wait() == [("mail", False)]
            assert inbox.messages == []

    asyncio.run(main())


def test_webhook_receives_the_alert_as_json() -> None:
    async def main() -> None:
        async with webhook_server() as (url, received):
            results = Results()
            async with running(alerter(AlertsSection(webhook=WebhookAlert(url=url)), results)) as a:
                a.submit(transition())
                assert await results.wait() == [("webhook", True)]
        [body] = received
        assert body["reason"] == REASON
        assert body["from_state"] == "standby"
        assert body["to_state"] == "active"
        assert body["epoch"] == 7
        assert body["node"] == "cfg2"
        assert body["details"] == {"check": "pop3", "failures": "3"}
        assert body["subject"].startswith("[failoverd] cfg2: standby -> active")

    asyncio.run(main())


def test_webhook_failing_twice_is_delivered_on_retry(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with webhook_server([500, 503]) as (url, received):
            results = Results()
            cfg = AlertsSection(webhook=WebhookAlert(url=url), retries=2)
            async with running(alerter(cfg, results)) as a:
                a.submit(transition())
                assert await results.wait() == [("webhook", True)]
        assert len(received) == 3

    with caplog.at_level(logging.WARNING, logger=LOG.name):
        asyncio.run(main())
    retries = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(retries) == 2
    assert "HTTP 500" in retries[0] and "HTTP 503" in retries[1]
    assert TOKEN not in caplog.text


def test_dead_endpoints_are_counted_and_never_delay_submit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        with refusing_port() as smtp, refusing_port() as http:
            results = Results()
            cfg = AlertsSection(
                mail=mail_cfg(smtp),
                webhook=WebhookAlert(url=f"http://127.0.0.1:{http}/hook/{TOKEN}"),
                retries=2,
            )
            async with running(alerter(cfg, results)) as a:
                a.submit(transition())  # a plain call: it cannot wait on the network
                assert results.queue.empty()
                outcomes = await results.wait(2)
        assert sorted(outcomes) == [("mail", False), ("webhook", False)]

    with caplog.at_level(logging.WARNING, logger=LOG.name):
        asyncio.run(main())
    gave_up = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(gave_up) == 2
    assert all("after 3 attempt(s)" in line and "\n" not in line for line in gave_up)
    assert TOKEN not in caplog.text


def test_a_hanging_smtp_server_does_not_delay_the_webhook() -> None:
    async def main() -> None:
        with silent_port() as smtp:
            async with webhook_server() as (url, received):
                results = Results()
                cfg = AlertsSection(mail=mail_cfg(smtp), webhook=WebhookAlert(url=url))
                async with running(alerter(cfg, results)) as a:
                    a.submit(transition())
                    assert await results.wait() == [("webhook", True)]  # mail still waiting
                    assert len(received) == 1
                    await a.stop(drain_timeout=0.05)
        assert results.queue.empty()
        assert results.dropped == ["mail"]
        assert a.dropped == 1

    asyncio.run(main())


def test_full_queue_drops_the_oldest() -> None:
    async def main() -> None:
        async with webhook_server() as (url, received):
            results = Results()
            a = alerter(AlertsSection(webhook=WebhookAlert(url=url)), results, queue_size=2)
            for i in range(5):  # before start(): all of them queue up
                a.submit(transition(f"reason {i}"))
            assert a.dropped == 3
            async with running(a):
                await results.wait(2)
            a.submit(transition("too late"))
        assert [body["reason"] for body in received] == ["reason 3", "reason 4"]
        assert results.dropped == ["webhook"] * 4

    asyncio.run(main())


def test_stop_drains_and_a_failing_callback_stops_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    delivered: list[bool] = []

    def on_result(channel: str, ok: bool) -> None:
        delivered.append(ok)
        raise RuntimeError("metrics broke")

    async def main() -> None:
        async with webhook_server() as (url, received):
            a = Alerter("cfg2", AlertsSection(webhook=WebhookAlert(url=url)), LOG, on_result)
            a.start()
            a.submit(transition("one"))
            a.submit(transition("two"))
            await a.stop(drain_timeout=10)
        assert [body["reason"] for body in received] == ["one", "two"]

    asyncio.run(main())
    assert delivered == [True, True]
    assert "callback failed" in caplog.text


def test_logged_urls_carry_no_token_and_no_password() -> None:
    assert safe_url("https://u:pw@hooks.example.com/services/T0/B1/xyz?t=1") == (
        "https://hooks.example.com"
    )
    assert safe_url("http://[::1]:8080/hook/secret") == "http://[::1]:8080"


def test_alert_results_feed_the_metrics() -> None:
    metrics = Metrics("cfg2")

    async def main() -> None:
        with refusing_port() as http:
            cfg = AlertsSection(webhook=WebhookAlert(url=f"http://127.0.0.1:{http}/"), retries=0)
            a = Alerter(
                "cfg2", cfg, LOG, metrics.alert_result, on_drop=metrics.alert_dropped, queue_size=1
            )
            a.submit(transition("dropped: the queue holds one"))
            a.start()
            a.submit(transition("fails: nobody listens"))
            await a.stop(drain_timeout=10)

    asyncio.run(main())
    body = metrics.render()[0].decode()
    assert 'failoverd_alerts_failed_total{channel="webhook"} 1.0' in body
    assert 'failoverd_alerts_dropped_total{channel="webhook"} 1.0' in body
