"""failoverd in the lab: witness, two nodes starting/stopping Dovecot, HAProxy in front.

The profiles are the ones docs/profiles.md documents; change both together.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import signal
import socket
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import NODES, RoleChange, http_get, http_json, other, wait_until
from failoverd.config.schema import NodeConfig, WitnessConfig
from failoverd.core.params import vote_block
from failoverd.core.types import Preference, SafetyMode
from failoverd.lab.dovecot import DovecotInstance
from failoverd.lab.haproxy import POP3_PORT, HAProxy
from failoverd.lab.netns import Host, LabProcess, Topology
from failoverd.lab.node import (
    API_PORT,
    node_config,
    node_daemon,
    witness_config,
    witness_daemon,
    write_config,
    write_secret,
)

USER, PASSWORD = "alice", "secret"


@dataclass(frozen=True)
class Profile:
    """A failoverd profile: its [timing], its scripts and the HAProxy check interval."""

    name: str
    timing: dict[str, str]  # the [timing] section as written in the file
    stop: str  # "graceful" (doveadm stop) or "kill" (SIGKILL to Dovecot's process group)
    start_timeout: str
    stop_timeout: str
    loss: float  # packet loss of the false-failover run
    haproxy_inter: str = "100ms"
    check: dict[str, Any] = field(default_factory=dict)  # the local pop3 check's timers
    safety: SafetyMode = SafetyMode.WITNESS
    demote_timeout: str | None = None  # with a demote script (the kill script), its timeout
    trials_only: bool = False  # an extra for comparison: no footprint or false-failover runs

    def witness_timing(self) -> dict[str, Any]:
        """The witness's copies of the timers it shares with the nodes."""
        keys = ("clock_drift", "demote_margin", "dead_time")
        return {k: self.timing[k] for k in keys if k in self.timing}


DEFAULT = Profile(
    name="default",
    timing={},  # every timer at the schema's default
    stop="graceful",
    start_timeout="5s",
    stop_timeout="5s",
    loss=0.30,
)

FAST = Profile(
    name="fast",
    timing={
        "heartbeat_interval": "50ms",
        "dead_time": "150ms",
        "init_dead": "1s",
        "demote_margin": "30ms",
        "lease_time": "250ms",
        "max_network_delay": "10ms",
    },
    stop="kill",
    start_timeout="2s",
    stop_timeout="100ms",
    loss=0.10,
    haproxy_inter="50ms",
    check={"interval": "500ms", "timeout": "500ms", "rise": 2, "fall": 3},
)

# The default profile with a demote script (docs/profiles.md): the kill script stops Dovecot
# when the lease cannot be renewed, so the lease covers 500 ms instead of doveadm's 5 s.
DEMOTE = dataclasses.replace(DEFAULT, name="demote", demote_timeout="500ms")

# Not a profile to run: the default timers in the seed's cooperative mode (no witness,
# UNSAFE under a partition, as VRRP is), to show what the default profile's lease costs.
COOPERATIVE = Profile(
    name="cooperative",
    timing={},
    stop="graceful",
    start_timeout="5s",
    stop_timeout="5s",
    loss=0.30,
    safety=SafetyMode.COOPERATIVE,
    trials_only=True,
)

# Not a profile either: the default one behind a load balancer that checks every second
# instead of every 100 ms, for the footprint alone (what /health polling costs).
LB_1S = dataclasses.replace(DEFAULT, name="default-lb1s", haproxy_inter="1s")

PROFILES = {p.name: p for p in (DEFAULT, DEMOTE, FAST, COOPERATIVE)}


def kill_script(dovecot: DovecotInstance, path: Path) -> Path:
    """A stop script that SIGKILLs the Dovecot master's process group and waits until it is gone.

    Idempotent like the lab's stop.sh: a master that is not running (no pid
    file, a dead or zombie PID, a PID now running something else) is success.
    """
    conf = shlex.quote(str(dovecot.conf_path))
    pidfile = shlex.quote(str(dovecot.pid_file))
    path.write_text(
        textwrap.dedent(f"""\
        #!/bin/sh
        # Written by bench.fd: stop Dovecot at once (its Maildirs are crash-safe).
        running() {{  # alive and not a zombie (orphans are not always reaped here)
            {{ read -r line <"/proc/$pid/stat"; }} 2>/dev/null || return 1
            rest=${{line##*) }}
            [ "${{rest%% *}}" != Z ]
        }}
        {{ read -r pid <{pidfile}; }} 2>/dev/null || exit 0
        running || exit 0
        tr '\\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- {conf} || exit 0
        kill -9 "-$pid"  # the master leads its process group: it and every child
        i=0
        while running && [ $i -lt 400 ]; do sleep 0.005; i=$((i + 1)); done
        ! running
        """)
    )
    path.chmod(0o755)
    return path


class FailoverdCluster:
    """failoverd with one profile in a lab: `start()`, then the `Cluster` operations."""

    system = "failoverd"

    def __init__(self, lab: Topology, profile: Profile, *, checks: int = 0) -> None:
        self.lab = lab
        self.p = profile
        self.profile = profile.name
        self.loss = profile.loss
        self.trials_only = profile.trials_only
        self.extra_checks = checks
        self.dir = lab.run_dir / f"failoverd-{profile.name}"
        self.hosts = {name: lab[name] for name in NODES}
        self.dovecot: dict[str, DovecotInstance] = {}
        self.daemons: dict[str, LabProcess] = {}
        self.configs: dict[str, NodeConfig] = {}
        self.witness: LabProcess | None = None
        self.haproxy: HAProxy | None = None
        self.listeners: list[_Listener] = []

    # -- set-up ----------------------------------------------------------------------

    def _node_config(self, host: Host, secret: Path, password: Path) -> NodeConfig:
        d = self.dovecot[host.name]
        kill = str(kill_script(d, self.dir / f"{host.name}-kill-dovecot.sh"))
        stop = kill if self.p.stop == "kill" else d.stop_command()
        scripts = {
            "startup": [{"command": d.start_command(), "timeout": self.p.start_timeout}],
            "shutdown": [{"command": stop, "timeout": self.p.stop_timeout}],
        }
        if self.p.demote_timeout is not None:
            scripts["demote"] = [{"command": kill, "timeout": self.p.demote_timeout}]
        checks: list[dict[str, Any]] = [
            {
                "type": "pop3",
                "name": "pop3",
                "scope": "local",
                "host": host.addr,
                "port": POP3_PORT,
                "user": USER,
                "password_file": str(password),
                **self.p.check,
            }
        ]
        checks += [
            {"type": "tcp", "name": f"tcp{i:03d}", "scope": "local", "host": host.addr,
             "port": CHECK_PORT}
            for i in range(self.extra_checks)
        ]  # fmt: skip
        return node_config(
            host,
            self.hosts[other(host.name)],
            preference=Preference.PRIMARY if host.name == "primary" else Preference.STANDBY,
            secret_file=secret,
            state_dir=self.dir / host.name / "state",
            safety=self.p.safety,
            witness=self.lab.witness if self.witness_mode else None,
            timing=self.p.timing,
            scripts=scripts,
            checks=checks,
        )

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        secret = write_secret(self.dir / "secret")
        password = self.dir / "pop3.password"
        password.write_text(PASSWORD)
        password.chmod(0o600)
        for name, host in self.hosts.items():
            d = DovecotInstance(
                self.dir / name / "dovecot",
                POP3_PORT,
                listen=host.addr,
                greeting=f"lab node {name} ready",
                users={USER: PASSWORD},
            )
            d.write_config()
            self.dovecot[name] = d
        if self.extra_checks:
            self.listeners = [_Listener(host, CHECK_PORT) for host in self.hosts.values()]
        if self.witness_mode:
            self._start_witness(secret)
        for name, host in self.hosts.items():
            cfg = self._node_config(host, secret, password)
            self.configs[name] = cfg
            path = write_config(cfg, self.dir / f"{name}.toml")
            self.daemons[name] = node_daemon(host, path, self.dir / f"{name}.log")
        for daemon in self.daemons.values():
            daemon.start()
        self.haproxy = HAProxy.for_nodes(
            self.lab.lb, list(self.hosts.values()), self.dir / "haproxy", api_port=API_PORT
        )
        self.haproxy.inter = self.p.haproxy_inter
        self.haproxy.start()
        self.settle(60.0)

    def _start_witness(self, secret: Path) -> None:
        base = witness_config(
            self.lab.witness,
            (self.hosts["primary"], self.hosts["standby"]),
            secret_file=secret,
            state_dir=self.dir / "witness" / "state",
        )
        data = base.model_dump(mode="json", exclude_none=True, exclude_unset=True)
        data["witness"].update(self.p.witness_timing())
        wcfg = WitnessConfig.model_validate(data)
        wpath = write_config(wcfg, self.dir / "witness.toml")
        self.witness = witness_daemon(self.lab.witness, wpath, self.dir / "witness.log")
        self.witness.start()

    @property
    def witness_mode(self) -> bool:
        return self.p.safety is SafetyMode.WITNESS

    # -- state -----------------------------------------------------------------------

    def status(self, node: str) -> Any:
        """The node's /status (a dict), or None."""
        host = self.hosts[node]
        return http_json(self.lab.lb, host.addr, API_PORT, "/status")

    def healthy(self, node: str) -> bool:
        host = self.hosts[node]
        try:
            return http_get(self.lab.lb, host.addr, API_PORT, "/health")[0] == 200
        except OSError:
            return False

    @property
    def vote_block(self) -> float:
        cfg = self.configs["primary"]
        return vote_block(cfg.lease_time, cfg.timing.clock_drift, cfg.timing.demote_margin)

    @property
    def quiet(self) -> float:
        """How long after its last role change the cluster counts as settled."""
        if self.witness_mode:
            # A restarted voter grants nothing for one vote block after its start.
            return self.vote_block + 1.0
        return 2 * self.configs["primary"].timing.dead_time + 1.0

    def _settled(self) -> str | None:
        assert self.haproxy is not None
        states = {n: self.status(n) for n in NODES}
        if any(s is None or "node" not in s for s in states.values()):
            return None  # not answering, or starting (nothing published yet)
        for node in NODES:
            mine, theirs = states[node], states[other(node)]
            assert mine is not None and theirs is not None
            if mine["node"]["state"] != "active" or theirs["node"]["state"] != "standby":
                continue
            age = theirs["peer"]["age"]
            if age is None or age > self.configs[node].timing.dead_time:
                return None
            if theirs["daemon"]["uptime"] < self.quiet:
                return None
            hap = self.haproxy.server_states()
            if hap.get(node) != "UP" or not str(hap.get(other(node))).startswith("DOWN"):
                return None
            return node
        return None

    def settle(self, timeout: float) -> str:
        """One node active, the other standby, and no role change for a vote block and more
        (the aftermath of a fault, e.g. a healed node's abandoned takeover, is over)."""

        def settled() -> str | None:
            changes = self.role_changes()
            if changes and time.monotonic() - changes[-1].at < self.quiet:
                return None
            return self._settled()

        return wait_until(settled, timeout, "failoverd: one node active, one standby", 0.1)

    def client_target(self) -> tuple[str, int]:
        assert self.haproxy is not None
        return self.haproxy.address

    # -- faults ----------------------------------------------------------------------

    def kill(self, node: str) -> None:
        self.daemons[node].signal(signal.SIGKILL)
        self.dovecot[node].kill()
        daemon = self.daemons[node].process
        assert daemon is not None
        daemon.wait(5.0)

    def restart(self, node: str) -> None:
        self.daemons[node].start()

    def daemon_pids(self, node: str) -> dict[str, int]:
        pid = self.daemons[node].pid
        return {} if pid is None else {"failoverd": pid}

    def witness_pids(self) -> dict[str, int]:
        pid = None if self.witness is None else self.witness.pid
        return {} if pid is None else {"failoverd witness": pid}

    def role_changes(self) -> list[RoleChange]:
        """A node starting its services ("starting services at epoch N") or beginning to
        release them. A takeover abandoned before its startup scripts moves nothing: it is
        counted by `attempts`, not here."""
        changes = []
        for node in NODES:
            for rec in self._journal(node):
                if rec["kind"] == "takeover":
                    changes.append(RoleChange(node, float(rec["clock"]), True, rec["reason"]))
                elif rec.get("to") == "releasing":
                    detail = f"{rec.get('from')} -> releasing: {rec.get('reason', '')}"
                    changes.append(RoleChange(node, float(rec["clock"]), False, detail))
        return sorted(changes, key=lambda c: c.at)

    def attempts(self, start: float, end: float) -> int:
        """Takeovers begun (standby -> taking_over) in [start, end], abandoned or not."""
        return sum(
            1
            for node in NODES
            for rec in self._journal(node)
            if rec.get("to") == "taking_over" and start <= rec["clock"] <= end
        )

    def phases(self, node: str, since: float) -> dict[str, float]:
        """When `node` passed each step of its takeover, in seconds after `since`."""
        out: dict[str, float] = {}
        for rec in self._journal(node):
            if rec["clock"] < since:
                continue
            step = {"taking_over": "detected", "active": "active"}.get(rec.get("to") or "")
            if rec["kind"] == "takeover":
                step = "start"
            if step is not None and step not in out:
                out[step] = round(rec["clock"] - since, 4)
        return out

    def _journal(self, node: str) -> list[dict[str, Any]]:
        path = self.dir / node / "state" / "journal.jsonl"
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            return []
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # a torn last line
        return records

    def diagnose(self) -> dict[str, Any]:
        """What each node says about itself now (for a trial that went wrong)."""
        out: dict[str, Any] = {}
        for node in NODES:
            host = self.hosts[node]
            out[node] = {
                "status": self.status(node),
                "explain": http_json(self.lab.lb, host.addr, API_PORT, "/explain"),
            }
        return out

    def settings(self) -> dict[str, Any]:
        cfg = self.configs["primary"]
        t = cfg.timing
        settings: dict[str, Any] = {
            "safety": self.p.safety.value,
            "heartbeat_interval": t.heartbeat_interval,
            "dead_time": t.dead_time,
            "init_dead": t.init_dead,
            "demote_margin": t.demote_margin,
            "clock_drift": t.clock_drift,
            "max_network_delay": t.max_network_delay,
            "shutdown_timeout": round(cfg.shutdown_timeout, 4),
            "startup": f"Dovecot start.sh (daemon mode), timeout {self.p.start_timeout}",
            "shutdown": (
                f"doveadm stop (graceful), timeout {self.p.stop_timeout}"
                if self.p.stop == "graceful"
                else f"SIGKILL to Dovecot's process group, timeout {self.p.stop_timeout}"
            ),
            "local_check": "pop3 login, interval/timeout/rise/fall "
            + "/".join(
                str(getattr(cfg.check[0], k)) for k in ("interval", "timeout", "rise", "fall")
            ),
            "extra_checks": self.extra_checks,
            "haproxy": f"httpchk GET /health inter {self.p.haproxy_inter} fall 2 rise 1",
        }
        if self.p.demote_timeout is not None:
            settings["demote"] = (
                f"SIGKILL to Dovecot's process group, timeout {self.p.demote_timeout}"
            )
        if self.witness_mode:
            settings["lease_time"] = round(cfg.lease_time, 4)
            settings["lease_time_setting"] = t.lease_time
            settings["vote_block"] = round(self.vote_block, 4)
        return settings

    def close(self) -> None:
        for daemon in self.daemons.values():
            daemon.stop(2.0)
        if self.witness is not None:
            self.witness.stop(2.0)
        if self.haproxy is not None:
            self.haproxy.stop(2.0)
        for d in self.dovecot.values():
            d.kill()
        for listener in self.listeners:
            listener.close()


CHECK_PORT = 9099


class _Listener:
    """A TCP port in a host that accepts and closes every connection (tcp checks' target)."""

    def __init__(self, host: Host, port: int) -> None:
        with host.entered():
            self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host.addr, port))
        self.sock.listen(512)
        self._closed = False
        threading.Thread(target=self._serve, name=f"listener {host.name}", daemon=True).start()

    def _serve(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()

    def close(self) -> None:
        self._closed = True
        self.sock.close()
