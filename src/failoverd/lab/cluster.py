"""A whole failoverd cluster in the lab: the seed's topology on one machine.

`Cluster` builds on a fresh `Topology`: in `primary` and `standby` a
failoverd node daemon each, with its own Dovecot (greeting with the node's
name) started and stopped by the daemon's startup and shutdown scripts; in
`witness` the witness daemon (witness mode); in `lb` HAProxy in TCP mode,
routing POP3 by each node's `/health`, and, in fence mode, the lab's power
switch (`failoverd.lab.fence`); in `client` the POP3 client looping through
HAProxy. A `ServiceWatch` samples who serves throughout.

```
with Cluster(ClusterSpec(mode=SafetyMode.FENCE)) as cluster:
    cluster.wait_steady()
    cluster.faults.isolate(cluster.primary.host)
```

Every node checks its own Dovecot (pop3, local) and its peer's (pop3,
remote), and runs with test timers (`ClusterSpec`). Optional hooks (a
pre-stop and a pre-start script) hang or delay the scripts on demand, for
the scenarios about slow and hanging scripts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import http.client
import itertools
import json
import os
import re
import secrets
import shlex
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from failoverd import apiauth
from failoverd.config.durations import format_duration
from failoverd.config.load import read_secret_file
from failoverd.config.schema import NodeConfig
from failoverd.core.types import Preference, SafetyMode
from failoverd.lab.client import Pop3Client
from failoverd.lab.dovecot import DovecotInstance
from failoverd.lab.faults import Faults
from failoverd.lab.fence import PowerSwitch
from failoverd.lab.haproxy import HAProxy
from failoverd.lab.netns import Host, LabError, LabPart, LabProcess, Topology, run_command
from failoverd.lab.node import (
    API_PORT,
    failoverd_command,
    node_config,
    node_daemon,
    witness_config,
    witness_daemon,
    write_config,
    write_secret,
)
from failoverd.lab.watch import ServiceWatch
from failoverd.store import Journal

POP3_PORT = 110
NODES = ("primary", "standby")
USER, PASSWORD = "alice", "secret"
HTTP_TIMEOUT = 2.0
_POLL = 0.05
_HOOKS = ("startup", "shutdown")
# Daemon log lines that are errors whatever the scenario.
_ALWAYS_BAD = ("Traceback", "internal task", "cannot write the journal", "CRITICAL")


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """The cluster's safety mode and test timers (seconds).

    dead_time is ten heartbeats: a 30 % lossy link then loses ten in a row
    about once in 170,000 windows, while a dead peer is still noticed
    within a second. The remote check is slow to condemn (`remote_fall`): it
    crosses the same link, and across 30 % loss a POP3 login fails about
    half the time even with a 4 s timeout (measured in the lab), so with
    fall 8 a fence-mode standby took over within 2 minutes of loss. The
    local check, which the active node reports in every heartbeat, is the
    fast path for a dead service.
    """

    mode: SafetyMode = SafetyMode.WITNESS
    heartbeat_interval: float = 0.1
    dead_time: float = 1.0
    init_dead: float = 2.0
    script_timeout: float = 5.0
    fence_retry: float = 1.0
    check_interval: float = 0.2
    remote_check_interval: float = 0.5
    remote_fall: int = 20
    hooks: bool = False
    hook_timeout: float = 3.0
    client_seconds: float = 900.0


@functools.cache
def cli_has(command: str) -> bool:
    """Whether the installed `failoverd` has the subcommand (the operator CLI may not)."""
    done = run_command([*failoverd_command(), command, "--help"], check=False)
    return done.returncode == 0


def http_request(
    client: Host,
    addr: str,
    port: int,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    timeout: float = HTTP_TIMEOUT,
) -> tuple[int, bytes]:
    """One HTTP request to addr:port from inside `client`'s namespace; OSError if no answer."""
    sock = client.socket()
    try:
        sock.settimeout(timeout)
        sock.connect((addr, port))
    except OSError:
        sock.close()
        raise
    conn = http.client.HTTPConnection(addr, port, timeout=timeout)
    conn.sock = sock
    try:
        conn.request(method, path, body=body or None, headers=dict(headers or {}))
        response = conn.getresponse()
        return response.status, response.read()
    except http.client.HTTPException as e:
        raise OSError(f"{method} {path}: {e!r}") from e
    finally:
        conn.close()


class ClusterNode:
    """One node: its host, Dovecot, configuration, daemon, journal and API."""

    def __init__(self, cluster: Cluster, host: Host, peer: Host, preference: Preference) -> None:
        self.cluster = cluster
        self.host = host
        self.peer = peer
        self.preference = preference
        self.dir = cluster.run_dir / host.name
        self.config_path = self.dir / "failoverd.toml"
        self.state_dir = self.dir / "state"
        self.log_path = self.dir / "daemon.log"
        self.dovecot = DovecotInstance(
            self.dir / "dovecot",
            POP3_PORT,
            listen=host.addr,
            users={USER: PASSWORD},
            greeting=f"failoverd lab node {host.name} ready",
        )
        self.daemon: LabProcess = node_daemon(host, self.config_path, self.log_path)
        self.config: NodeConfig | None = None

    def __repr__(self) -> str:
        return f"ClusterNode({self.name})"

    @property
    def name(self) -> str:
        return self.host.name

    # -- set-up ---------------------------------------------------------------

    def write_config(self, config: NodeConfig) -> None:
        self.config = config
        write_config(config, self.config_path)

    @property
    def hook_path(self) -> Path:
        return self.dir / "hook.sh"

    def hook_flag(self, phase: str) -> Path:
        return self.dir / f"{phase}-hook.hold"

    def write_hook(self) -> None:
        """hook.sh PHASE: holds for the seconds written in PHASE-hook.hold, if that file exists."""
        self.hook_path.write_text(
            '#!/bin/sh\nflag="$(dirname "$0")/$1-hook.hold"\n[ -e "$flag" ] || exit 0\n'
            'echo "$1 hook: holding"\nexec sleep "$(cat "$flag")"\n'
        )

    def hook_command(self, phase: str) -> str:
        return shlex.join(["/bin/sh", str(self.hook_path), phase])

    def arm_hook(self, phase: str, seconds: float) -> None:
        """Make the `phase` hook (scripts `startup` or `shutdown`) hold for `seconds`."""
        if not self.cluster.spec.hooks:
            raise LabError("this cluster has no hooks (ClusterSpec.hooks)")
        self.hook_flag(phase).write_text(f"{seconds:g}\n")

    def disarm_hooks(self) -> None:
        for phase in _HOOKS:
            self.hook_flag(phase).unlink(missing_ok=True)

    # -- the daemon -------------------------------------------------------------

    def start(self) -> None:
        self.daemon.start()

    def kill(self) -> None:
        """SIGKILL the daemon (only it: its scripts and Dovecot run in sessions of their own)."""
        self.daemon.kill()

    def signal(self, sig: signal.Signals) -> None:
        self.daemon.signal(sig)

    @property
    def pid(self) -> int:
        if not self.daemon.running or self.daemon.pid is None:
            raise LabError(f"the daemon of {self.name} is not running")
        return self.daemon.pid

    # -- what it says ----------------------------------------------------------------

    def status(self) -> dict[str, Any] | None:
        """GET /status from inside the node (works while its network is cut); None if silent."""
        try:
            code, body = http_request(self.host, self.host.addr, API_PORT, "GET", "/status")
            data = json.loads(body) if code == 200 else None
        except (OSError, ValueError):
            return None
        # A daemon that is still starting publishes an empty document.
        return data if isinstance(data, dict) and "node" in data else None

    def state(self) -> str | None:
        st = self.status()
        return None if st is None else str(st["node"]["state"])

    def journal(self) -> list[dict[str, Any]]:
        return Journal(self.state_dir / "journal.jsonl").read()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_errors(self, allowed: Sequence[str] = ()) -> list[str]:
        """Daemon log lines at ERROR level or worse, or tracebacks, matching none of the
        regular expressions `allowed`."""
        bad = []
        for line in self.log_text().splitlines():
            always = any(marker in line for marker in _ALWAYS_BAD)
            error = " ERROR " in line or always
            if error and (always or not any(re.search(a, line) for a in allowed)):
                bad.append(line)
        return bad

    # -- operator commands ----------------------------------------------------------

    def operate(
        self,
        command: str,
        arg: str | None = None,
        *,
        options: Sequence[str] = (),
        timeout: float = 90.0,
    ) -> tuple[bool, str]:
        """`failoverd COMMAND [ARG] [OPTIONS] -c CONFIG` in the node; (succeeded, output).

        Without the operator CLI in this failoverd, the same request is signed
        and sent to the node's API directly (switchover, failback, maintenance
        on|off; `options` are the CLI's only).
        """
        if cli_has(command):
            argv = [*failoverd_command(), command, *([arg] if arg else []), *options]
            done = self.host.exec(
                [*argv, "-c", str(self.config_path)], check=False, timeout=timeout
            )
            return done.returncode == 0, (done.stdout + done.stderr).strip()
        path = f"/{command}" + (f"/{arg}" if arg else "")
        if path not in apiauth.CONTROL_PATHS:
            raise LabError(f"no CLI command {command!r} and no API path {path}")
        body = json.dumps({"nonce": secrets.token_hex(16)}).encode()
        key = read_secret_file(self.cluster.secret_file)
        auth = apiauth.sign(key, "POST", path, body, time.time())
        headers = {"Content-Type": "application/json", apiauth.HEADER: auth}
        try:
            code, answer = http_request(
                self.host, self.host.addr, API_PORT, "POST", path, body=body, headers=headers
            )
        except OSError as e:
            return False, f"POST {path}: {e}"
        return code == 200, f"POST {path}: {code} {answer.decode(errors='replace')}"


class Cluster(LabPart):
    """The lab with a failoverd cluster in it; see the module docstring."""

    def __init__(
        self,
        spec: ClusterSpec | None = None,
        *,
        run_dir: Path | None = None,
        prefix: str = "fod",
    ) -> None:
        self.spec = spec or ClusterSpec()
        self.topology = Topology(run_dir, prefix=prefix)
        self.nodes: dict[str, ClusterNode] = {}
        self.witness: LabProcess | None = None
        self.switch: PowerSwitch | None = None

    # -- lifecycle ------------------------------------------------------------------

    def close(self) -> None:
        self.topology.close()

    @property
    def run_dir(self) -> Path:
        return self.topology.run_dir

    @property
    def mode(self) -> SafetyMode:
        return self.spec.mode

    @property
    def primary(self) -> ClusterNode:
        return self.nodes["primary"]

    @property
    def standby(self) -> ClusterNode:
        return self.nodes["standby"]

    def _build(self) -> None:
        """Build everything and start the daemons (`start()`); does not wait for them to settle."""
        self.topology.start()
        top, run = self.topology, self.run_dir
        self.faults = Faults(top)
        self.secret_file = write_secret(run / "secret")
        self.password_file = run / "pop3.password"
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(PASSWORD)
        self.nodes = {
            "primary": ClusterNode(self, top.primary, top.standby, Preference.PRIMARY),
            "standby": ClusterNode(self, top.standby, top.primary, Preference.STANDBY),
        }
        if self.mode is SafetyMode.FENCE:
            hosts = {n.name: n.host for n in self.nodes.values()}
            self.switch = PowerSwitch(top.lb, hosts, self._power_off)
            self.switch.start()
            top.add_cleanup(self.switch.close)
        for node in self.nodes.values():
            node.dovecot.write_config()
            node.write_hook()
            node.write_config(self.node_config(node))
        if self.mode is SafetyMode.WITNESS:
            path = write_config(
                witness_config(
                    top.witness,
                    (top.primary, top.standby),
                    secret_file=self.secret_file,
                    state_dir=run / "witness" / "state",
                ),
                run / "witness" / "witness.toml",
            )
            self.witness = witness_daemon(top.witness, path, run / "witness" / "witness.log")
            self.witness.start()
        self.haproxy = HAProxy.for_nodes(
            top.lb, [top.primary, top.standby], run / "haproxy", service_port=POP3_PORT
        )
        self.haproxy.start()
        self.watch = ServiceWatch(
            [top.primary, top.standby],
            top.lb,
            pop3_port=POP3_PORT,
            api_port=API_PORT,
            max_seconds=self.spec.client_seconds,
        )
        self.watch.start()
        top.add_cleanup(self.watch.stop)
        for node in self.nodes.values():
            node.start()
        self.client = Pop3Client(
            top.client,
            self.haproxy.address,
            run / "client.jsonl",
            nodes=NODES,
            user=USER,
            password=PASSWORD,
            max_seconds=self.spec.client_seconds,
        )
        self.client.start()

    def node_config(self, node: ClusterNode, spec: ClusterSpec | None = None) -> NodeConfig:
        """The configuration of `node` for `spec` (default: the cluster's)."""
        s = spec or self.spec
        dovecot = node.dovecot
        script = functools.partial(_script, timeout=s.script_timeout)
        startup = [script(dovecot.start_command())]
        shutdown = [script(dovecot.stop_command())]
        if s.hooks:
            startup.insert(0, _script(node.hook_command("startup"), s.hook_timeout))
            shutdown.insert(0, _script(node.hook_command("shutdown"), s.hook_timeout))
        fence = []
        if s.mode is SafetyMode.FENCE:
            assert self.switch is not None
            fence = [script(shlex.join(self.switch.command(node.peer.name)))]
        login = {"user": USER, "password_file": str(self.password_file)}
        local = {
            "type": "pop3", "name": "pop3", "scope": "local", "host": node.host.addr,
            "port": POP3_PORT, "interval": format_duration(s.check_interval), "timeout": "1s",
            "rise": 2, "fall": 2, **login,
        }  # fmt: skip
        remote = {
            "type": "pop3", "name": f"pop3-{node.peer.name}", "scope": "remote",
            "host": node.peer.addr, "port": POP3_PORT,
            "interval": format_duration(s.remote_check_interval), "timeout": "2s",
            "rise": 2, "fall": s.remote_fall, **login,
        }  # fmt: skip
        return node_config(
            node.host,
            node.peer,
            preference=node.preference,
            secret_file=self.secret_file,
            state_dir=node.state_dir,
            safety=s.mode,
            witness=self.topology.witness if s.mode is SafetyMode.WITNESS else None,
            timing={
                "heartbeat_interval": format_duration(s.heartbeat_interval),
                "dead_time": format_duration(s.dead_time),
                "init_dead": format_duration(s.init_dead),
                "fence_retry": format_duration(s.fence_retry),
            },
            scripts={
                "working_dir": str(node.dir),
                "startup": startup,
                "shutdown": shutdown,
                "fence": fence,
            },
            checks=[local, remote],
        )

    def rewrite_configs(self, **changes: Any) -> ClusterSpec:
        """Write both nodes' configurations for the spec with `changes` (no signal sent)."""
        spec = dataclasses.replace(self.spec, **changes)
        if spec.mode is not self.mode or spec.hooks is not self.spec.hooks:
            raise LabError("the mode and the hooks of a running cluster stay as they are")
        for node in self.nodes.values():
            node.write_config(self.node_config(node, spec))
        self.spec = spec
        return spec

    def _power_off(self, host: Host) -> str:
        return self.faults.kill_host(host).detail

    # -- observing --------------------------------------------------------------------

    def states(self) -> dict[str, str | None]:
        return {name: node.state() for name, node in self.nodes.items()}

    def wait_until(
        self, condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.1
    ) -> float:
        """Poll `condition` until true; the time then. LabError naming `what` after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            if condition():
                return time.monotonic()
            if time.monotonic() > deadline:
                raise LabError(f"not within {timeout:g}s: {what} (states now {self.states()})")
            time.sleep(poll)

    def wait_answer(self, node: str, after: float, timeout: float) -> float:
        """Wait until the client was answered by `node` (a login started after `after`)."""
        log = self.client.wait_for(lambda log: log.first_answer(after, node) is not None, timeout)
        answer = log.first_answer(after, node)
        assert answer is not None
        return answer.end

    def wait_steady(self, timeout: float = 60.0) -> float:
        """Wait for the primary active, the standby standby, and the client served by primary."""
        self.wait_until(
            lambda: self.states() == {"primary": "active", "standby": "standby"},
            timeout,
            "primary active and standby standby",
        )
        return self.wait_answer("primary", time.monotonic(), timeout)

    def active(self) -> list[ClusterNode]:
        return [n for n in self.nodes.values() if n.state() == "active"]

    # -- healing ------------------------------------------------------------------------

    def restore(self, timeout: float = 60.0) -> ClusterNode:
        """Heal every fault, power dead nodes on, clear a failed state; wait for one active node.

        Returns the node that is active, once it answers the client again.
        """
        self.faults.heal_all()
        for node in self.nodes.values():
            node.host.link_up()  # also after a fence, which the switch did outside `faults`
            node.disarm_hooks()
            if not node.daemon.running:
                node.start()
        self.wait_until(
            lambda: all(s is not None for s in self.states().values()),
            timeout,
            "both daemons answer",
        )
        for node in self.nodes.values():
            if node.state() == "failed":
                for mode in ("on", "off"):
                    ok, out = node.operate("maintenance", mode)
                    if not ok:
                        raise LabError(f"maintenance {mode} on {node.name}: {out}")
        self.wait_until(
            lambda: sorted(self.states().values(), key=str) == ["active", "standby"],
            timeout,
            "one node active, the other standby",
        )
        (active,) = self.active()
        self.wait_answer(active.name, time.monotonic(), timeout)
        return active

    def settled(self, allowed_errors: Sequence[str] = (), timeout: float = 5.0) -> list[str]:
        """`consistency()` once it holds, or its problems after `timeout` (a node that just
        became standby learns the active epoch from the next heartbeat)."""
        deadline = time.monotonic() + timeout
        while (problems := self.consistency(allowed_errors)) and time.monotonic() < deadline:
            time.sleep(_POLL * 4)
        return problems

    def consistency(self, allowed_errors: Sequence[str] = ()) -> list[str]:
        """What is inconsistent now across the nodes' states, journals, logs and services."""
        problems = []
        answers = {name: node.status() for name, node in self.nodes.items()}
        st = {name: status for name, status in answers.items() if status is not None}
        if len(st) < len(answers):
            return [f"no answer to GET /status from {', '.join(answers.keys() - st.keys())}"]
        states = {k: v["node"]["state"] for k, v in st.items()}
        active = [k for k, s in states.items() if s == "active"]
        if sorted(states.values()) != ["active", "standby"]:
            problems.append(f"states {states}: want one active and one standby")
        if len(active) == 1:
            a, b = active[0], next(k for k in st if k != active[0])
            epoch = st[a]["node"]["epoch"]
            if st[b]["node"]["epoch"] != epoch or st[b]["peer"]["epoch"] != epoch:
                problems.append(
                    f"epochs: {a} active at {epoch}, {b} has {st[b]['node']['epoch']} and sees "
                    f"{a} at {st[b]['peer']['epoch']}"
                )
            if st[a]["peer"]["state"] != "standby":
                problems.append(f"{a} sees {b} as {st[a]['peer']['state']}")
            sample = self.watch.wait_sample(time.monotonic())
            if sample is not None and (sample.serving, sample.healthy) != ((a,), (a,)):
                problems.append(
                    f"serving {sample.serving}, /health 200 on {sample.healthy}: want only {a}"
                )
        problems += journal_problems({n: node.journal() for n, node in self.nodes.items()})
        for name, node in self.nodes.items():
            problems += [f"{name} log: {line}" for line in node.log_errors(allowed_errors)]
        return problems


def journal_problems(journals: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    """Epochs going backwards in a journal, or two takeovers into the same epoch."""
    problems = []
    became_active: list[tuple[float, int, str]] = []
    for node, records in journals.items():
        last = 0
        for r in records:
            if r["epoch"] < last:
                problems.append(f"{node} journal: epoch went from {last} to {r['epoch']}: {r}")
            last = max(last, r["epoch"])
            if r["kind"] == "transition" and r["to"] == "active" and r["from"] == "taking_over":
                became_active.append((r["clock"], r["epoch"], node))
    became_active.sort()
    for (_, e1, n1), (_, e2, n2) in itertools.pairwise(became_active):
        if e2 <= e1:
            problems.append(f"takeovers out of order: {n1} at epoch {e1}, then {n2} at epoch {e2}")
    return problems


def transitions(
    journals: Mapping[str, Sequence[Mapping[str, Any]]], since: float = 0.0
) -> Iterator[dict[str, Any]]:
    """Every transition in the journals at or after `since` (monotonic), in time order."""
    records = [
        dict(r, node=node)
        for node, rs in journals.items()
        for r in rs
        if r["kind"] == "transition" and r["clock"] >= since
    ]
    yield from sorted(records, key=lambda r: r["clock"])


def _script(command: str, timeout: float) -> dict[str, str]:
    return {"command": command, "timeout": format_duration(timeout)}


@contextlib.contextmanager
def stopped(node: ClusterNode, faults: Faults) -> Iterator[None]:
    """The node's daemon frozen (SIGSTOP) for the block, resumed after it."""
    fault = faults.sigstop(node.pid)
    try:
        yield
    finally:
        faults.heal(fault)
