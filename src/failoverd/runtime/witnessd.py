"""`failoverd witness`: the third vote, a small process for a third host."""

import asyncio
import logging
import os
import signal
import time
from collections.abc import Mapping
from typing import Any

from failoverd import __version__, wire
from failoverd.config.schema import WitnessConfig, split_address
from failoverd.core.actions import Persist, Record, SendAck
from failoverd.core.events import HeartbeatReceived, Operation
from failoverd.core.messages import Heartbeat
from failoverd.core.witness import WitnessCore
from failoverd.metrics import Metrics
from failoverd.runtime.handle import Health, OperationResult
from failoverd.runtime.keys import keyring_of
from failoverd.runtime.transport import Addr, Transport
from failoverd.sdnotify import SystemdNotifier
from failoverd.store import Journal, StateStore, decision_record

# The witness takes no commands; the window only matters for the wire API.
COMMAND_WINDOW = 30.0


class WitnessDaemon:
    def __init__(self, cfg: WitnessConfig, log: logging.Logger) -> None:
        self.cfg = cfg
        self.log = log
        w = cfg.witness
        self.store = StateStore(w.state_dir)
        self.journal = Journal(w.state_dir / "journal.jsonl")
        self.boot = self.store.next_boot()
        keyring = keyring_of(cfg.cluster)
        self.prom = Metrics(w.name)
        self.transport = Transport(
            wire.Sealer(keyring, w.name, self.boot),
            wire.Opener(keyring, set(w.nodes), COMMAND_WINDOW),
            log,
            on_datagram=self._on_datagram,
            on_command=self._no_commands,
            on_dropped=lambda exc, _src: self.prom.frame_dropped(exc),
        )
        self.started = time.monotonic()
        self.core = WitnessCore(
            w.name,
            (w.nodes[0], w.nodes[1]),
            drift=w.clock_drift,
            margin=w.demote_margin,
            now=self.started,
            persisted=self.store.load(),
        )
        self.notifier = SystemdNotifier.from_env()

    async def run(self) -> int:
        from failoverd.api import ApiServer  # noqa: PLC0415

        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: self.log.info("SIGHUP: nothing to reload"))
        host, port = split_address(self.cfg.witness.listen)
        await self.transport.start(host, port, tcp=False)
        api = None
        if self.cfg.witness.api:
            api_host, api_port = split_address(self.cfg.witness.api)
            api = ApiServer(self, api_host, api_port, self.log.getChild("api"))
            api.start()
        self.log.info(
            "failoverd %s: witness %s for %s; it grants no vote for one lease time after start",
            __version__,
            self.cfg.witness.name,
            " and ".join(self.cfg.witness.nodes),
        )
        self.notifier.ready("witness listening")
        await stop.wait()
        if api is not None:
            api.stop()
        await self.transport.stop()
        self.notifier.close()
        return 0

    def _on_datagram(self, env: wire.Envelope, addr: Addr) -> None:
        if not isinstance(env.message, Heartbeat):
            return
        for action in self.core.handle(HeartbeatReceived(env.message), time.monotonic()):
            match action:
                case SendAck(_to, ack):
                    self.transport.send_datagram(ack, addr)
                case Persist(state):
                    self.store.save(state)
                case Record(d):
                    self.log.info("[%s] %s", d.kind, d.reason)
                    self.journal.append(decision_record(d, time.time()))
                case _:
                    pass

    async def _no_commands(self, env: wire.Envelope) -> None:
        return None

    # -- DaemonHandle, for /status and /metrics -----------------------------------

    def health(self) -> Health:
        return Health(True, "witness running")

    def snapshot(self) -> Mapping[str, Any]:
        st = self.core.status()
        return {
            "witness": {
                "name": st.name,
                "vote": {"holder": st.holder, "epoch": st.holder_epoch, "left": st.vote_left},
                "max_epoch": st.max_epoch,
                "quiet_left": st.quiet_left,
                "nodes": [
                    {
                        "name": v.node,
                        "state": v.state.value,
                        "epoch": v.epoch,
                        "age": round(v.age, 3),
                        "checks_ok": v.checks_ok,
                    }
                    for v in st.views
                ],
            },
            "daemon": {
                "version": __version__,
                "pid": os.getpid(),
                "uptime": round(time.monotonic() - self.started, 1),
            },
        }

    def operate(self, op: Operation, timeout: float) -> OperationResult:
        return OperationResult(False, "a witness takes no operator commands")

    def history(self, limit: int | None) -> list[dict[str, Any]]:
        return self.journal.read(limit)

    def explain(self) -> list[str]:
        st = self.core.status()
        if st.holder is None:
            return [f"Witness {st.name}: no vote held."]
        return [
            f"Witness {st.name}: vote held by {st.holder} (epoch {st.holder_epoch}) "
            f"for {st.vote_left:.2f}s more."
        ]

    def metrics(self, accept: str) -> tuple[bytes, str]:
        return self.prom.render(accept)

    def verify(self, method: str, path: str, body: bytes, header: str | None) -> bool:
        return False
