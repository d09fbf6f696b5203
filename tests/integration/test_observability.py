"""A real failover, as an operator sees it: a mail, a webhook call, metrics, the history.

The alert receivers are real servers in the test process: aiosmtpd for mail
and an aiohttp application for the webhook, both on loopback.
"""

import asyncio
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from failoverd.core.types import SafetyMode
from failoverd.demo.cluster import NodePlan
from failoverd.demo.ports import free_ports
from failoverd.demo.waiting import wait_for
from tests.integration.conftest import TIMEOUT, MakeCluster, start_settled


@dataclass
class Mailbox:
    messages: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content.decode("utf-8", errors="replace"))
        return "250 OK"


@dataclass
class Webhook:
    """An aiohttp application on its own loop and thread, keeping every JSON it receives."""

    port: int
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _receive(self, request: web.Request) -> web.Response:
        self.calls.append(await request.json())
        return web.Response(text="ok")

    async def _start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/hook", self._receive)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        return runner

    def __enter__(self) -> "Webhook":
        self.thread.start()
        self.runner = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def receivers() -> Iterator[tuple[Mailbox, Webhook, int]]:
    smtp_port, hook_port = free_ports(2)
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        with Webhook(hook_port) as hook:
            yield mailbox, hook, smtp_port
    finally:
        controller.stop()


def _metrics(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


def test_failover_alerts_by_mail_and_webhook_and_shows_in_metrics_and_history(
    make_cluster: MakeCluster, receivers: tuple[Mailbox, Webhook, int]
) -> None:
    mailbox, hook, smtp_port = receivers

    def alerts(plan: NodePlan, data: dict[str, Any]) -> None:
        data["alerts"] = {
            "mail": {
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp_port,
                "sender": f"failoverd@{plan.name}.test",
                "recipients": ["oncall@example.test"],
            },
            "webhook": {"url": f"http://127.0.0.1:{hook.port}/hook"},
            "retries": 2,
        }

    cluster = start_settled(make_cluster(SafetyMode.WITNESS, tweak=alerts))
    primary, standby = cluster.primary, cluster.standby
    before = _metrics(standby.plan.api_url)
    assert 'failoverd_state{state="standby"} 1.0' in before

    cluster.kill_node(primary)
    standby.wait_state("active", TIMEOUT)

    def mail(subject: str) -> str | None:
        return next((m for m in mailbox.messages if f"Subject: {subject}" in m), None)

    wait_for(
        lambda: mail(f"[failoverd] {standby.name}: taking_over -> active"),
        TIMEOUT,
        "the mail saying the standby is active",
    )
    takeover_mail = wait_for(
        lambda: mail(f"[failoverd] {standby.name}: standby -> taking_over"),
        TIMEOUT,
        "the mail with the takeover's reason",
    )
    assert f"no heartbeat from {primary.name}" in takeover_mail

    call = wait_for(
        lambda: next(
            (c for c in hook.calls if c["to_state"] == "taking_over" and c["node"] == standby.name),
            None,
        ),
        TIMEOUT,
        "the webhook call for the takeover",
    )
    assert call["from_state"] == "standby"
    assert call["details"]["cause"] == "peer_silent"
    assert f"no heartbeat from {primary.name}" in call["reason"]

    after = _metrics(standby.plan.api_url)
    assert 'failoverd_state{state="active"} 1.0' in after
    assert 'failoverd_failovers_total{reason="peer_silent"} 1.0' in after
    duration = next(
        line for line in after.splitlines() if line.startswith("failoverd_last_failover_duration")
    )
    assert float(duration.split()[-1]) > 0

    history = standby.cli("history", "--json")
    assert history.returncode == 0, history.stderr
    entries = json.loads(history.stdout)
    [entry] = [e for e in entries if e["kind"] == "transition" and e["to"] == "taking_over"]
    assert f"no heartbeat from {primary.name}" in entry["reason"]
    assert entry["details"]["cause"] == "peer_silent"
    assert time.time() - 120 < time.mktime(time.strptime(entry["time"][:19], "%Y-%m-%dT%H:%M:%S"))
