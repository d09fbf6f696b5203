"""`failoverd run`: the node daemon.

It owns the I/O around one `NodeCore`: it feeds it heartbeats, acks, commands,
check results, script ends and the passing of time, and carries out the
actions that come back, in order. It decides nothing itself.
"""

import asyncio
import logging
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from failoverd import __version__, wire
from failoverd.alerts import Alert, Alerter
from failoverd.apiauth import verify as verify_auth
from failoverd.checks import CheckOutcome, CheckRunner, build_check
from failoverd.config.load import load_node_config
from failoverd.config.params import node_params
from failoverd.config.schema import NodeConfig, split_address
from failoverd.core.actions import (
    Action,
    CancelScripts,
    OperatorAnswer,
    Persist,
    Record,
    ReplyShutdown,
    ReplyTakeover,
    RunScripts,
    SendAck,
    SendHeartbeat,
    SendShutdown,
    SendTakeover,
)
from failoverd.core.events import (
    AckReceived,
    CheckResult,
    Departing,
    Event,
    HeartbeatReceived,
    Operation,
    OperatorCommand,
    ScriptsFinished,
    ShutdownAnswered,
    ShutdownRequested,
    Stalled,
    TakeoverAnswered,
    TakeoverRequested,
    Tick,
)
from failoverd.core.explain import explain
from failoverd.core.messages import (
    Ack,
    Heartbeat,
    Message,
    ShutdownReply,
    ShutdownRequest,
    TakeoverReply,
    TakeoverRequest,
)
from failoverd.core.node import NodeCore
from failoverd.core.records import Decision
from failoverd.core.types import NodeState, ScriptPhase, ShutdownOutcome
from failoverd.metrics import Metrics, ScriptOutcome
from failoverd.runtime.handle import Health, OperationResult
from failoverd.runtime.keys import api_keys_of, keyring_of
from failoverd.runtime.priority import lock_memory, raise_priority
from failoverd.runtime.transport import Addr, Transport
from failoverd.scripts import ScriptRunner, kill_leftover
from failoverd.sdnotify import SystemdNotifier
from failoverd.store import Journal, StateStore, decision_record

SAFETY_SUMMARY = {
    "witness": "active only while a majority (node, peer, witness) grants the lease",
    "fence": "the peer is fenced before services start unless it confirmed its shutdown",
    "cooperative": "UNSAFE under a partition: confirmation or a timeout, as the seed did",
}


class ReloadRefused(Exception):
    """A reloaded configuration changes something that needs a restart."""


class NodeDaemon:
    def __init__(self, config_path: Path, cfg: NodeConfig, log: logging.Logger) -> None:
        self.config_path = config_path
        self.cfg = cfg
        self.log = log
        self.params = node_params(cfg)
        self.store = StateStore(cfg.node.state_dir)
        self.journal = Journal(cfg.node.state_dir / "journal.jsonl")
        self.boot = self.store.next_boot()
        self.api_keys = api_keys_of(cfg.cluster)
        keyring = keyring_of(cfg.cluster)
        senders = {cfg.peer.name} | ({cfg.witness.name} if cfg.witness else set())
        self.transport = Transport(
            wire.Sealer(keyring, cfg.node.name, self.boot),
            wire.Opener(keyring, senders, cfg.timing.command_window),
            log,
            on_datagram=self._on_datagram,
            on_command=self._on_command,
            on_dropped=lambda exc, _src: self.prom.frame_dropped(exc),
        )
        self.prom = Metrics(cfg.node.name, heartbeat_ack_timeout=cfg.timing.dead_time)
        self.alerter = self._alerter(cfg)
        ledger = cfg.node.state_dir / "running-script.json"
        kill_leftover(ledger, log)  # before the core decides anything
        self.scripts = ScriptRunner(self._working_dir(cfg), log.getChild("scripts"), ledger=ledger)
        self.checks = self._check_runner(cfg)
        self.notifier = SystemdNotifier.from_env()
        self.started = time.monotonic()
        self.core = NodeCore(self.params, self.started, self.store.load(), str(self.boot))
        self.loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._reply_to: Addr | None = None
        self._replies: dict[str, asyncio.Future[Message]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_activity = self.started
        self._stop = asyncio.Event()
        self._status: Mapping[str, Any] = {}
        self._serve_until: float | None = None
        self._health_reason = "starting"
        self._publish_pending = False
        self._takeover_began: float | None = None
        self._last_failover: dict[str, Any] = {"time": None, "reason": None, "duration": None}
        self._explain: list[str] = []

    # -- set-up ----------------------------------------------------------------

    @staticmethod
    def _working_dir(cfg: NodeConfig) -> Path:
        return cfg.scripts.working_dir or Path.cwd()

    def _alerter(self, cfg: NodeConfig) -> Alerter:
        return Alerter(
            cfg.node.name,
            cfg.alerts,
            self.log.getChild("alerts"),
            self.prom.alert_result,
            on_drop=self.prom.alert_dropped,
        )

    def _check_runner(self, cfg: NodeConfig) -> CheckRunner:
        return CheckRunner([build_check(c) for c in cfg.check], self._on_check)

    @property
    def peer_addrs(self) -> list[Addr]:
        return [split_address(a) for a in self.cfg.peer.addresses]

    @property
    def witness_addr(self) -> Addr | None:
        return split_address(self.cfg.witness.address) if self.cfg.witness else None

    async def run(self) -> int:
        from failoverd.api import ApiServer  # noqa: PLC0415 (the API pulls in aiohttp's server)

        self.loop = asyncio.get_running_loop()
        host, port = split_address(self.cfg.node.listen)
        await self.transport.start(host, port)
        api_host, api_port = split_address(self.cfg.node.api)
        api = ApiServer(
            self,
            api_host,
            api_port,
            self.log.getChild("api"),
            auth_window=self.cfg.timing.command_window,
        )
        api.start()
        self._raise_priority(api.thread_id)
        self.alerter.start()
        self.checks.start()
        for sig, handler in (
            (signal.SIGTERM, self._stop.set),
            (signal.SIGINT, self._stop.set),
            (signal.SIGHUP, self._reload),
        ):
            self.loop.add_signal_handler(sig, handler)
        mode = self.params.mode.value
        self.log.info(
            "failoverd %s: node %s (%s), peer %s, safety mode %s: %s",
            __version__,
            self.cfg.node.name,
            self.cfg.node.preference,
            self.cfg.peer.name,
            mode,
            SAFETY_SUMMARY[mode],
        )
        if mode == "cooperative":
            self.log.warning(
                "safety mode cooperative is UNSAFE under a network partition: both nodes may "
                "run the service; use witness or fence"
            )
        self.prom.set_preference(self.params.preference)
        self.prom.set_safety_mode(self.params.mode)
        self.feed(Tick())
        self.notifier.ready(f"{self.core.state}, epoch {self.core.epoch}")
        self._spawn(self._watch_loop(), "loop watch")
        await self._stop.wait()
        self.notifier.stopping("stopping")
        await self._depart()
        if self._timer is not None:
            self._timer.cancel()
        await self.checks.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.alerter.stop(drain_timeout=2.0)
        api.stop()
        await self.transport.stop()
        self.notifier.close()
        return 0

    def _raise_priority(self, api_thread: int | None) -> None:
        """Real-time scheduling and locked memory (see failoverd.runtime.priority)."""
        threads = () if api_thread is None else (api_thread,)
        for outcome in (
            raise_priority(self.cfg.node.realtime_priority, threads),
            lock_memory(self.cfg.node.lock_memory),
        ):
            if outcome.error is None:
                self.log.info("%s", outcome.what)
            else:
                self.log.warning(
                    "running without %s: %s; %s", outcome.what, outcome.error, outcome.fix
                )

    async def _depart(self) -> None:
        """Tell the peer this daemon is going and leaves the service as it is.

        The last heartbeat goes out three times (each sealed anew), so that one
        lost datagram does not make the peer mistake the stop for a failure.
        """
        for action in self.core.handle(Departing(), time.monotonic()):
            if isinstance(action, SendHeartbeat):
                for _ in range(3):
                    self._send_heartbeat(action.heartbeat)
                    await asyncio.sleep(0.02)
            else:
                self._carry_out(action)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: "asyncio.Task[Any]") -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("internal task %s failed: %r", task.get_name(), task.exception())

    # -- feeding the core --------------------------------------------------------

    def stall_threshold(self) -> float:
        return max(0.5, 3 * self.params.timing.heartbeat_interval)

    def feed(self, event: Event, reply_to: Addr | None = None) -> list[Action]:
        now = time.monotonic()
        gap = now - self._last_activity
        self._last_activity = now
        actions: list[Action] = []
        if gap > self.stall_threshold() and not isinstance(event, Stalled):
            # Judge nothing on a world we did not watch: tell the core first.
            actions += self._feed_one(Stalled(gap), now)
        self._reply_to = reply_to
        actions += self._feed_one(event, now)
        self._reply_to = None
        self._serve_until = self.core.serve_until()  # what /health reads: never late
        self._publish_soon()
        self._arm_timer(now)
        return actions

    def _publish_soon(self) -> None:
        """The full snapshot once per loop iteration, however many events it handled."""
        if self._publish_pending:
            return
        self._publish_pending = True
        assert self.loop is not None
        self.loop.call_soon(self._publish_now)

    def _publish_now(self) -> None:
        self._publish_pending = False
        self._publish(time.monotonic())

    def _feed_one(self, event: Event, now: float) -> list[Action]:
        actions = self.core.handle(event, now)
        for action in actions:
            self._carry_out(action)
        return actions

    def _arm_timer(self, now: float) -> None:
        assert self.loop is not None
        if self._timer is not None:
            self._timer.cancel()
        delay = max(0.0, self.core.next_wakeup() - now)
        self._timer = self.loop.call_later(delay, lambda: self.feed(Tick()))

    async def _watch_loop(self) -> None:
        """Measure the event loop's lag, and keep the systemd watchdog fed."""
        interval = 0.1
        watchdog = self.notifier.watchdog_interval()
        last_watchdog = 0.0
        while True:
            before = time.monotonic()
            await asyncio.sleep(interval)
            lag = max(0.0, time.monotonic() - before - interval)
            self.prom.loop_lag(lag)
            if watchdog is not None and time.monotonic() - last_watchdog >= watchdog:
                self.notifier.watchdog()
                last_watchdog = time.monotonic()

    # -- carrying out actions ---------------------------------------------------

    def _carry_out(self, action: Action) -> None:
        match action:
            case Persist(state):
                self.store.save(state)
            case Record(decision):
                self._record(decision)
            case SendHeartbeat(hb):
                self._send_heartbeat(hb)
            case SendAck(to, ack):
                self._send_ack(to, ack)
            case SendShutdown(req):
                self._spawn(self._request_shutdown(req), "shutdown request")
            case ReplyShutdown(reply):
                self._resolve(reply.request_id, reply)
            case SendTakeover(req):
                self._spawn(self._request_takeover(req), "takeover request")
            case ReplyTakeover(reply):
                self._resolve(reply.request_id, reply)
            case RunScripts(phase, epoch, reason):
                self._spawn(self._run_scripts(phase, epoch, reason), f"{phase} scripts")
            case CancelScripts():
                self.scripts.cancel()
            case OperatorAnswer():
                pass  # returned to the caller of operate()

    def _send_heartbeat(self, hb: Heartbeat) -> None:
        for addr in self.peer_addrs:
            self.prom.heartbeat_sent(f"{addr[0]}:{addr[1]}", _seq(hb.sent_at))
            self.transport.send_datagram(hb, addr)
        if self.witness_addr is not None:
            addr = self.witness_addr
            self.prom.heartbeat_sent(f"{addr[0]}:{addr[1]}", _seq(hb.sent_at))
            self.transport.send_datagram(hb, addr)

    def _send_ack(self, to: str, ack: Ack) -> None:
        addr = self._reply_to
        if addr is None:
            self.log.debug("no address to send the ack for %s to", to)
            return
        self.transport.send_datagram(ack, addr)

    def _record(self, d: Decision) -> None:
        level = logging.INFO if d.kind not in ("refused",) else logging.WARNING
        if d.is_transition:
            self.log.log(
                level, "%s -> %s (epoch %d): %s", d.from_state, d.to_state, d.epoch, d.reason
            )
        else:
            self.log.log(level, "[%s] %s", d.kind, d.reason)
        try:
            self.journal.append(decision_record(d, time.time()))
        except OSError as exc:
            self.log.error("cannot write the journal: %s", exc)
        failed_script = d.kind == "script" and " failed" in d.reason
        if d.is_transition or failed_script:
            self.alerter.submit(Alert.from_decision(d, "script_failed" if failed_script else None))
        if d.is_transition:
            self._on_transition(d)

    def _on_transition(self, d: Decision) -> None:
        assert d.to_state is not None
        self.prom.set_state(d.to_state)
        self.prom.set_epoch(d.epoch)
        self.notifier.status(f"{d.to_state}, epoch {d.epoch}: {d.reason}"[:200])
        if d.to_state is NodeState.TAKING_OVER:
            self._takeover_began = d.at
            self.prom.failover_started(dict(d.details).get("cause", "other"))
            self._last_failover = {"time": time.time(), "reason": d.reason, "duration": None}
        elif d.to_state is NodeState.ACTIVE and self._takeover_began is not None:
            duration = d.at - self._takeover_began
            self.prom.failover_finished(duration)
            self._last_failover["duration"] = round(duration, 3)
            self._takeover_began = None

    # -- messages in -------------------------------------------------------------

    def _on_datagram(self, env: wire.Envelope, addr: Addr) -> None:
        msg = env.message
        if isinstance(msg, Heartbeat):
            self.feed(HeartbeatReceived(msg), reply_to=addr)
        elif isinstance(msg, Ack):
            rtt = time.monotonic() - msg.request_sent_at
            self.prom.heartbeat_acked(f"{addr[0]}:{addr[1]}", _seq(msg.request_sent_at), rtt)
            self.feed(AckReceived(msg))
        else:
            self.log.warning("ignored %s over UDP from %s", type(msg).__name__, env.sender)

    async def _on_command(self, env: wire.Envelope) -> Message | None:
        msg = env.message
        if isinstance(msg, ShutdownRequest):
            fut = self._expect(msg.request_id)
            self.feed(ShutdownRequested(msg))
        elif isinstance(msg, TakeoverRequest):
            fut = self._expect(msg.request_id)
            self.feed(TakeoverRequested(msg))
        else:
            self.log.warning("ignored %s over TCP from %s", type(msg).__name__, env.sender)
            return None
        try:
            # The peer waits at most its shutdown_timeout; keep the reply a little longer
            # (a graceful shutdown cut short by the lease is followed by the demote scripts).
            p = self.params
            wait = p.timing.shutdown_timeout + p.shutdown_budget + (p.demote_budget or 0.0) + 5
            return await asyncio.wait_for(fut, timeout=wait)
        except TimeoutError:
            return None
        finally:
            self._replies.pop(msg.request_id, None)

    def _expect(self, request_id: str) -> "asyncio.Future[Message]":
        assert self.loop is not None
        fut: asyncio.Future[Message] = self.loop.create_future()
        self._replies[request_id] = fut
        return fut

    def _resolve(self, request_id: str, reply: ShutdownReply | TakeoverReply) -> None:
        fut = self._replies.get(request_id)
        if fut is not None and not fut.done():
            fut.set_result(reply)
        else:
            self.log.info(
                "reply %s for %s: the requester is gone", type(reply).__name__, request_id
            )

    async def _request_shutdown(self, req: ShutdownRequest) -> None:
        timeout = self.params.timing.shutdown_timeout
        try:
            reply = await self.transport.request(req, self.peer_addrs, timeout)
        except OSError as exc:
            self.feed(ShutdownAnswered(req.request_id, ShutdownOutcome.UNREACHABLE, str(exc)))
            return
        except (TimeoutError, wire.WireError) as exc:
            self.log.warning(
                "SHUTDOWN_YOUR_SERVICE to %s: %s", self.cfg.peer.name, exc or "timeout"
            )
            return  # the core's own deadline decides
        if isinstance(reply, ShutdownReply) and reply.request_id == req.request_id:
            self.feed(ShutdownAnswered(reply.request_id, reply.outcome, reply.detail))

    async def _request_takeover(self, req: TakeoverRequest) -> None:
        try:
            reply = await self.transport.request(req, self.peer_addrs, 10.0)
        except (TimeoutError, OSError, wire.WireError) as exc:
            self.feed(TakeoverAnswered(req.request_id, False, str(exc) or "no answer"))
            return
        if isinstance(reply, TakeoverReply):
            self.feed(TakeoverAnswered(reply.request_id, reply.accepted, reply.detail))

    # -- scripts and checks ----------------------------------------------------------

    async def _run_scripts(self, phase: ScriptPhase, epoch: int, reason: str) -> None:
        env = {
            "FAILOVERD_NODE": self.cfg.node.name,
            "FAILOVERD_PEER": self.cfg.peer.name,
            "FAILOVERD_EPOCH": str(epoch),
            "FAILOVERD_REASON": reason,
        }
        started = time.monotonic()
        result = await self.scripts.run_phase(phase, self.cfg.scripts.specs(phase), env)
        timed_out = any(r.timed_out for r in result.results)
        outcome = (
            ScriptOutcome.OK
            if result.ok
            else ScriptOutcome.TIMEOUT
            if timed_out
            else ScriptOutcome.FAILED
        )
        self.prom.script_finished(phase, outcome, time.monotonic() - started)
        self.feed(ScriptsFinished(phase, result.ok, result.detail))

    def _on_check(self, name: str, outcome: CheckOutcome) -> None:
        tracker = self.core.local.trackers.get(name) or self.core.remote.trackers.get(name)
        scope = tracker.spec.scope if tracker else None
        self.feed(CheckResult(name, outcome.ok, outcome.detail))
        if tracker is not None and scope is not None:
            self.prom.check_result(name, scope, outcome.ok, outcome.latency, tracker.failures)

    # -- reload --------------------------------------------------------------------------

    def _reload(self) -> None:
        self.notifier.reloading("reloading the configuration")
        try:
            cfg = load_node_config(self.config_path)
            self._apply(cfg)
        except Exception as exc:
            self.log.error("reload refused, keeping the running configuration: %s", exc)
        else:
            self.log.info("configuration reloaded from %s", self.config_path)
        self.notifier.ready(f"{self.core.state}, epoch {self.core.epoch}")

    def _apply(self, cfg: NodeConfig) -> None:
        fixed = {
            "node.name": (cfg.node.name, self.cfg.node.name),
            "node.listen": (cfg.node.listen, self.cfg.node.listen),
            "node.api": (cfg.node.api, self.cfg.node.api),
            "node.state_dir": (cfg.node.state_dir, self.cfg.node.state_dir),
            "node.realtime_priority": (
                cfg.node.realtime_priority,
                self.cfg.node.realtime_priority,
            ),
            "node.lock_memory": (cfg.node.lock_memory, self.cfg.node.lock_memory),
            "peer.name": (cfg.peer.name, self.cfg.peer.name),
            "cluster.safety": (cfg.cluster.safety, self.cfg.cluster.safety),
            "witness": (cfg.witness, self.cfg.witness),
            "scripts.working_dir": (cfg.scripts.working_dir, self.cfg.scripts.working_dir),
        }
        changed = [k for k, (new, old) in fixed.items() if new != old]
        if changed:
            raise ReloadRefused(f"{', '.join(changed)} cannot change on reload: restart the daemon")
        keyring = keyring_of(cfg.cluster)
        self.transport.sealer.rekey(keyring)
        self.transport.opener.rekey(keyring)
        self.api_keys = api_keys_of(cfg.cluster)
        old_checks, old_alerter = self.checks, self.alerter
        self.alerter = self._alerter(cfg)
        self.alerter.start()
        self._spawn(old_alerter.stop(drain_timeout=5.0), "stop old alerter")
        self.cfg = cfg
        self.params = node_params(cfg)
        self.core.reconfigure(self.params)
        self.checks = self._check_runner(cfg)
        self._spawn(old_checks.stop(), "stop old checks")
        self.checks.start()
        logging.getLogger("failoverd").setLevel(cfg.log.level.upper())

    # -- what the API thread reads ------------------------------------------------------

    def _publish(self, now: float) -> None:
        st = self.core.status()
        self._serve_until = st.serve_until
        if st.state is not NodeState.ACTIVE:
            self._health_reason = f"{st.state}"
        elif not self.core.local.ok:
            self._health_reason = f"local checks failing: {self.core.local.describe_down()}"
        elif st.serve_until is None:
            self._health_reason = "active, but holding no valid lease"
        else:
            self._health_reason = "active"
        lease_left = None if st.lease_until is None else round(st.lease_until - now, 3)
        self.prom.set_lease_remaining(lease_left)
        self.prom.set_maintenance(st.maintenance)
        w = st.witness_view
        self._status = {
            "node": {
                "name": st.name,
                "state": st.state.value,
                "preference": st.preference.value,
                "epoch": st.epoch,
                "maintenance": st.maintenance,
                "healthy": st.healthy,
                "lease_left": lease_left,
                "lease_voters": list(st.lease_voters),
                "takeover_phase": st.takeover_phase,
                "last_transition": st.last_transition,
                "local_checks": [
                    {"name": n, "up": up, "detail": d} for n, up, d in st.local_checks
                ],
            },
            "peer": {
                "name": st.peer_name,
                "state": st.peer_state.value if st.peer_state else None,
                "epoch": st.peer_epoch,
                "age": None if st.peer_age is None else round(st.peer_age, 3),
                "checks_ok": st.peer_checks_ok,
                "maintenance": st.peer_maintenance,
                "remote_checks": [
                    {"name": n, "up": up, "detail": d} for n, up, d in st.remote_checks
                ],
            },
            "witness": {
                "name": self.cfg.witness.name if self.cfg.witness else None,
                "view_of_peer": None
                if w is None
                else {"state": w.state.value, "age": round(w.age, 3), "checks_ok": w.checks_ok},
            },
            "safety": {"mode": st.mode.value, "summary": SAFETY_SUMMARY[st.mode.value]},
            "last_failover": dict(self._last_failover),
            "daemon": {
                "version": __version__,
                "pid": os.getpid(),
                "uptime": round(now - self.started, 1),
            },
        }
        self._explain = explain(st, now)

    def health(self) -> Health:
        until = self._serve_until
        if until is None:
            return Health(False, self._health_reason)
        if time.monotonic() >= until:
            return Health(False, "lease expired: not renewed in time")
        return Health(True, "active")

    def snapshot(self) -> Mapping[str, Any]:
        return self._status

    def operate(self, op: Operation, timeout: float) -> OperationResult:
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(self._operate(op), self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            return OperationResult(False, "the daemon did not answer in time")

    async def _operate(self, op: Operation) -> OperationResult:
        for action in self.feed(OperatorCommand(op)):
            if isinstance(action, OperatorAnswer):
                return OperationResult(action.ok, action.message)
        return OperationResult(False, "no answer from the core")

    def history(self, limit: int | None) -> list[dict[str, Any]]:
        return self.journal.read(limit)

    def explain(self) -> list[str]:
        return list(self._explain)

    def metrics(self, accept: str) -> tuple[bytes, str]:
        return self.prom.render(accept)

    def verify(self, method: str, path: str, body: bytes, header: str | None) -> bool:
        return verify_auth(
            self.api_keys,
            method,
            path,
            body,
            header,
            now=time.time(),
            window=self.cfg.timing.command_window,
        )


def _seq(sent_at: float) -> int:
    """The heartbeat's send time, as the integer key the loss window tracks."""
    return int(sent_at * 1_000_000)
