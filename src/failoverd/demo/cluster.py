"""A failoverd cluster of real processes on loopback: the demo's and the integration tests'.

`Cluster` writes a secret, a POP3 password and one config per node (and the
witness's, in witness mode) into a directory, with free 127.0.0.1 ports; each
node's STARTUP/SHUTDOWN scripts are `failoverd.demo.service start|stop` of its
own sample POP3 service, and each node checks its own service (local) and its
peer's (remote) with the pop3 check. It starts `failoverd run` / `failoverd
witness` as processes of their own (each in a new session, output into a log
file) and observes them from outside, as an operator would: `GET /status`,
the journal in state_dir, POP3 greetings, the service pidfiles.

Closing stops the daemons it started (SIGTERM, then SIGKILL), then the
services through their pidfiles, then any process still running whose command
line names this cluster's directory (a script a killed daemon left behind).
"""

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from failoverd.config.schema import NodeConfig, WitnessConfig
from failoverd.core.types import Preference, SafetyMode
from failoverd.demo import service
from failoverd.demo.logs import log_tail
from failoverd.demo.ports import LOOPBACK, free_ports
from failoverd.demo.waiting import WaitTimeout, wait_for
from failoverd.lab.node import failoverd_command, write_config, write_secret
from failoverd.store import JOURNAL_FILE, Journal

POP3_USER = "demo"
WITNESS = "gamma"
"""The witness's name (the nodes are alpha and beta)."""
STOP_TIMEOUT = 5.0

FAST_TIMING: Mapping[str, str] = {
    "heartbeat_interval": "100ms",
    "dead_time": "600ms",
    "init_dead": "1s",
}
"""Short timers: a failure is noticed in well under a second."""

Tweak = Callable[["NodePlan", dict[str, Any]], None]
"""Changes a node's config (the TOML document as a dict) before it is validated and written."""


def pop3_greeting(port: int, timeout: float = 0.5) -> str | None:
    """The greeting of the POP3 server on 127.0.0.1:`port` if it is `+OK ...`, else None."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as conn:
            line = conn.makefile("rb").readline(512).decode(errors="replace").strip()
            with contextlib.suppress(OSError):
                conn.sendall(b"QUIT\r\n")
    except OSError:
        return None
    return line if line.startswith("+OK") else None


def python_module(module: str, *args: str) -> str:
    """A shell command line running `module` with this Python."""
    return shlex.join([sys.executable, "-m", module, *args])


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_json(
    url: str,
    timeout: float = 1.0,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """The JSON document at `url` (any status), or None when nothing answers; POSTs `body`
    if one is given."""
    request = urllib.request.Request(url, data=body, headers=dict(headers or {}))
    try:
        with _NO_PROXY.open(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        with exc:
            return json.load(exc)
    except (OSError, ValueError):
        return None


class Daemon:
    """A process this harness starts, in a session of its own, its output into `log`."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.argv = argv
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.alive:
            raise RuntimeError(f"{self.argv} is already running (pid {self.pid})")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """The exit status, once the process has exited; WaitTimeout otherwise."""
        proc = self.proc
        assert proc is not None
        wait_for(lambda: proc.poll() is not None, timeout, f"pid {proc.pid} to exit")
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL, and reap."""
        if self.alive:
            self.signal(signal.SIGKILL)
            self.wait(STOP_TIMEOUT)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM; SIGKILL if it has not exited after `timeout`."""
        if not self.alive:
            return
        self.signal(signal.SIGTERM)
        try:
            self.wait(timeout)
        except WaitTimeout:
            self.kill()

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log, lines)


@dataclass(frozen=True, slots=True)
class NodePlan:
    """Where one node's things are: its ports and its files under `home`."""

    name: str
    preference: Preference
    peer_port: int
    api_port: int
    pop3_port: int
    home: Path

    @property
    def config(self) -> Path:
        return self.home / "failoverd.toml"

    @property
    def log(self) -> Path:
        return self.home / "daemon.log"

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    @property
    def pidfile(self) -> Path:
        return self.home / "pop3.pid"

    @property
    def service_log(self) -> Path:
        return self.home / "pop3.log"

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.api_port}"


def failoverd_cli(
    config: Path, *args: str, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """`failoverd ARGS -c CONFIG`, its output captured."""
    return subprocess.run(
        [*failoverd_command(), *args, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Node:
    """A node: its plan, its config, its daemon, and what can be seen of it from outside."""

    def __init__(self, plan: NodePlan, config: NodeConfig) -> None:
        self.plan = plan
        self.name = plan.name
        self.config = config
        self.daemon = Daemon([*failoverd_command(), "run", "-c", str(plan.config)], plan.log)

    def __repr__(self) -> str:
        return f"Node({self.name!r}, pid={self.daemon.pid})"

    def status(self) -> dict[str, Any] | None:
        """GET /status, or None when the API does not answer (or has nothing to show yet)."""
        doc = http_json(f"{self.plan.api_url}/status")
        return doc if isinstance(doc, dict) and "node" in doc else None

    def state(self) -> str | None:
        st = self.status()
        return None if st is None else str(st["node"]["state"])

    def journal(self) -> list[dict[str, Any]]:
        return Journal(self.plan.state_dir / JOURNAL_FILE).read()

    def pop3(self) -> str | None:
        """The greeting of this node's POP3 service, if it answers."""
        return pop3_greeting(self.plan.pop3_port)

    def service_pid(self) -> int | None:
        return service.service_pid(self.plan.pidfile.resolve())

    def cli(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """`failoverd ARGS -c CONFIG` of this node, its output captured."""
        return failoverd_cli(self.plan.config, *args, timeout=timeout)

    def wait_state(self, state: str, timeout: float) -> None:
        """Wait until /status reports `state`; the timeout names the last state seen."""
        seen: list[str | None] = [None]

        def reached() -> bool:
            seen[0] = self.state()
            return seen[0] == state

        try:
            wait_for(reached, timeout, f"{self.name} to be {state}")
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc} (last seen: {seen[0]}; log: {self.plan.log})") from None

    def wait_serving(self, timeout: float) -> str:
        """Wait until this node's own POP3 service answers; its greeting."""
        return wait_for(self.pop3, timeout, f"{self.name}'s POP3 service to answer")

    def log_text(self) -> str:
        return self.plan.log.read_text(errors="replace") if self.plan.log.exists() else ""


def _scripts(plan: NodePlan, password_file: Path) -> dict[str, Any]:
    start = python_module(
        "failoverd.demo.service",
        "start",
        "--pidfile",
        str(plan.pidfile),
        "--log",
        str(plan.service_log),
        "--port",
        str(plan.pop3_port),
        "--name",
        plan.name,
        "--user",
        POP3_USER,
        "--password-file",
        str(password_file),
    )
    stop = python_module("failoverd.demo.service", "stop", "--pidfile", str(plan.pidfile))
    return {
        "startup": [{"command": start, "timeout": "10s"}],
        "shutdown": [{"command": stop, "timeout": "2s"}],
    }


def _pop3_check(name: str, scope: str, port: int, password_file: Path) -> dict[str, Any]:
    return {
        "name": name,
        "type": "pop3",
        "scope": scope,
        "host": LOOPBACK,
        "port": port,
        "user": POP3_USER,
        "password_file": str(password_file),
        "interval": "200ms",
        "timeout": "500ms",
        "rise": 1,
        "fall": 2,
    }


@dataclass
class Overlap:
    """A moment when both nodes' services answered (or both reported active)."""

    at: float
    what: str


@dataclass
class DualWatch:
    """Samples both nodes' POP3 services and states until stopped; records any overlap."""

    nodes: tuple[Node, Node]
    interval: float = 0.02
    samples: int = 0
    overlaps: list[Overlap] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dual-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        a, b = self.nodes
        while not self._stop.wait(self.interval):
            greetings = (a.pop3(), b.pop3())
            if all(greetings):
                self.overlaps.append(Overlap(time.time(), f"both answer POP3: {greetings}"))
            self.samples += 1


class Cluster:
    """Two nodes (`primary`, `standby`) and, in witness mode, a witness, all on loopback."""

    def __init__(
        self,
        base: Path,
        safety: SafetyMode = SafetyMode.COOPERATIVE,
        *,
        tweak: Tweak | None = None,
        names: tuple[str, str] = ("alpha", "beta"),
    ) -> None:
        self.base = base.resolve()
        self.safety = safety
        self.secret_file = write_secret(self.base / "cluster.secret")
        self.password_file = self.base / "pop3.password"
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(os.urandom(12).hex())
        ports = free_ports(8)
        plans = [
            NodePlan(name, pref, ports[3 * i], ports[3 * i + 1], ports[3 * i + 2], self.base / name)
            for i, (name, pref) in enumerate(zip(names, Preference, strict=True))
        ]
        witness_port, witness_api = ports[6:]
        self.witness: Daemon | None = None
        self.witness_state_dir = self.base / "witness" / "state"
        if safety is SafetyMode.WITNESS:
            self.witness = self._write_witness(names, witness_port, witness_api)
        self.witness_api = f"http://{LOOPBACK}:{witness_api}"
        nodes = [
            self._write_node(plan, peer, witness_port, tweak)
            for plan, peer in zip(plans, reversed(plans), strict=True)
        ]
        self.primary, self.standby = nodes
        self.nodes = (self.primary, self.standby)
        self._closed = False

    def _write_witness(self, names: tuple[str, str], port: int, api: int) -> Daemon:
        home = self.base / "witness"
        cfg = WitnessConfig.model_validate(
            {
                "witness": {
                    "name": WITNESS,
                    "listen": f"{LOOPBACK}:{port}",
                    "api": f"{LOOPBACK}:{api}",
                    "state_dir": str(self.witness_state_dir),
                    "nodes": list(names),
                    "dead_time": FAST_TIMING["dead_time"],
                },
                "cluster": {"safety": "witness", "secret_file": str(self.secret_file)},
            }
        )
        path = write_config(cfg, self.witness_config)
        return Daemon([*failoverd_command(), "witness", "-c", str(path)], home / "witness.log")

    @property
    def witness_config(self) -> Path:
        """The witness's configuration file (written in witness mode only)."""
        return self.base / "witness" / "witness.toml"

    def _write_node(
        self, plan: NodePlan, peer: NodePlan, witness_port: int, tweak: Tweak | None
    ) -> Node:
        data: dict[str, Any] = {
            "node": {
                "name": plan.name,
                "preference": plan.preference.value,
                "listen": f"{LOOPBACK}:{plan.peer_port}",
                "api": f"{LOOPBACK}:{plan.api_port}",
                "state_dir": str(plan.state_dir),
            },
            "peer": {
                "name": peer.name,
                "addresses": [f"{LOOPBACK}:{peer.peer_port}"],
                "api": f"{LOOPBACK}:{peer.api_port}",
            },
            "cluster": {"safety": self.safety.value, "secret_file": str(self.secret_file)},
            "timing": dict(FAST_TIMING),
            "scripts": _scripts(plan, self.password_file),
            "check": [
                _pop3_check("pop3", "local", plan.pop3_port, self.password_file),
                _pop3_check("peer-pop3", "remote", peer.pop3_port, self.password_file),
            ],
        }
        if self.safety is SafetyMode.WITNESS:
            data["witness"] = {"name": WITNESS, "address": f"{LOOPBACK}:{witness_port}"}
        if tweak is not None:
            tweak(plan, data)
        config = NodeConfig.model_validate(data)
        write_config(config, plan.config)
        return Node(plan, config)

    # -- running ---------------------------------------------------------------

    def start(self) -> None:
        """Start the witness (if any), then both nodes."""
        if self.witness is not None:
            self.witness.start()
        for node in self.nodes:
            node.daemon.start()

    def wait_witness(self, timeout: float) -> None:
        """Wait until the witness's API answers (it is listening); WaitTimeout at once if its
        process has exited."""
        witness = self.witness
        assert witness is not None and witness.proc is not None

        def listening() -> bool:
            if not witness.alive:
                status = witness.proc.poll() if witness.proc else None
                raise WaitTimeout(f"the witness exited with status {status}")
            return http_json(f"{self.witness_api}/status") is not None

        wait_for(listening, timeout, "the witness to answer on its API")

    def witness_journal(self) -> list[dict[str, Any]]:
        return Journal(self.witness_state_dir / JOURNAL_FILE).read()

    def wait_settled(self, active: Node, timeout: float) -> None:
        """Wait until `active` is active and serving and the other node is its standby,
        aware that `active` is active and with its remote checks of it passing."""
        other = self.other(active)
        active.wait_state("active", timeout)
        active.wait_serving(timeout)

        def standing_by() -> bool:
            st = other.status()
            return (
                st is not None
                and st["node"]["state"] == "standby"
                and st["peer"]["state"] == "active"
                and all(c["up"] for c in st["peer"]["remote_checks"])
            )

        wait_for(standing_by, timeout, f"{other.name} to stand by for {active.name}")

    def other(self, node: Node) -> Node:
        return self.standby if node is self.primary else self.primary

    def kill_node(self, node: Node) -> tuple[int | None, int | None]:
        """SIGKILL the node's daemon and its service (as a power cut would); their pids."""
        daemon_pid, service_pid = node.daemon.pid, node.service_pid()
        node.daemon.kill()
        if service_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(service_pid, signal.SIGKILL)
        return daemon_pid, service_pid

    @contextlib.contextmanager
    def dual_watch(self) -> Iterator[DualWatch]:
        watch = DualWatch(self.nodes)
        watch.start()
        try:
            yield watch
        finally:
            watch.stop()

    # -- cleaning up -------------------------------------------------------------

    def close(self) -> None:
        """Stop everything this cluster started; idempotent."""
        if self._closed:
            return
        self._closed = True
        daemons = [n.daemon for n in self.nodes] + ([self.witness] if self.witness else [])
        for daemon in daemons:
            daemon.signal(signal.SIGTERM)
        for daemon in daemons:
            if daemon.proc is not None:
                daemon.stop()
        for node in self.nodes:
            with contextlib.suppress(service.ServiceError):
                service.stop(node.plan.pidfile, grace=1.0)
        sweep(self.base)

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def leftovers(base: Path) -> list[int]:
    """Pids of live processes (not this one) whose command line names a file under `base`."""
    me = os.getpid()
    found: list[int] = []
    marker = f"{base}/".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            if marker in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def sweep(base: Path) -> list[int]:
    """SIGKILL what is left of a cluster: each leftover's process group when it leads one
    (a script run by a daemon, with its children), else the process itself."""
    pids = leftovers(base)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
    return pids
