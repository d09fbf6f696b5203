"""keepalived in the lab: a VIP moving between the primary and standby namespaces.

Each node runs `keepalived --vrrp` in its namespace with one VRRP instance
on `eth0` (the lab bridge; adverts to 224.0.0.18 never leave it). Dovecot is
started by `notify_master` and stopped by `notify_backup`/`notify_fault`/
`notify_stop`, as failoverd's scripts do: one POP3 server at a time, so one
writer (the premise of both systems). A `vrrp_script` checks POP3 on the node
that holds the VIP (on the other node there is nothing to check). Both nodes
are BACKUP with priority 100 and `nopreempt`: no automatic failback, as
failoverd's default, and the same detection time in both directions.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import NODES, BenchError, RoleChange, other, wait_until
from failoverd.lab.dovecot import DovecotInstance
from failoverd.lab.haproxy import POP3_PORT
from failoverd.lab.netns import IFACE, Host, LabError, LabProcess, Topology, run_command

PACKAGE = "keepalived"
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
USER, PASSWORD = "alice", "secret"
PRIORITY = 100
# The VRRP states; the FIFO also carries events such as MASTER_RX_LOWER_PRI, which are not.
STATES = frozenset({"MASTER", "BACKUP", "FAULT", "STOP"})


@dataclass(frozen=True)
class Profile:
    name: str
    advert_int: str  # seconds, as written in keepalived.conf
    vrrp_version: int
    loss: float


DEFAULT = Profile("default", "1", 2, 0.30)
# VRRPv2 takes whole seconds only (2.2.7 rounds 0.5 up, with an error); VRRPv3 takes
# centiseconds: 0.01 is the smallest `keepalived -t` accepts ("outside range [0.01, 255]").
FAST = Profile("fast", "0.01", 3, 0.10)
PROFILES = {p.name: p for p in (DEFAULT, FAST)}


def ensure_installed(log: Callable[[str], None] = print) -> str:
    """The path of keepalived, installing Debian's package first if it is missing.

    As .ci/system-deps does, a policy-rc.d that denies starts is put in place
    first (if there is none), so that the package starts no system keepalived.
    """
    found = shutil.which("keepalived")
    if found is None:
        log(f"keepalived is missing: apt-get install {PACKAGE}")
        if not POLICY_RC_D.exists():
            POLICY_RC_D.write_text("#!/bin/sh\nexit 101\n")
            POLICY_RC_D.chmod(0o755)
        env_cmd = ["env", "DEBIAN_FRONTEND=noninteractive"]
        run_command([*env_cmd, "apt-get", "update", "-qq"], timeout=600)
        run_command(
            [*env_cmd, "apt-get", "install", "-y", "-qq", "--no-install-recommends", PACKAGE],
            timeout=600,
        )
        found = shutil.which("keepalived")
        if found is None:
            raise BenchError("keepalived is still missing after apt-get install")
    return found


def version() -> str:
    done = run_command(["keepalived", "--version"], check=False)
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


class FifoWatcher:
    """Reads keepalived's notify FIFO in a thread: every state change, in order, with the
    time.monotonic() it arrived (`INSTANCE "VI_1" MASTER 100`).

    The watcher holds a write end open itself, so the FIFO never reports end-of-file
    while keepalived restarts, and the thread waits in select() rather than spinning.
    """

    def __init__(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        os.mkfifo(path, 0o600)
        self.path = path
        self._read = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._write = os.open(path, os.O_WRONLY)
        self._lines: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"fifo {path}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pending = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._read], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(self._read, 4096)
            except BlockingIOError:
                continue
            except OSError:
                return
            now = time.monotonic()
            *lines, pending = (pending + data).split(b"\n")
            with self._lock:
                for line in lines:
                    words = line.decode(errors="replace").split()
                    if len(words) >= 3 and words[0] == "INSTANCE" and words[2] in STATES:
                        self._lines.append((now, words[2]))

    def states(self) -> list[tuple[float, str]]:
        with self._lock:
            return list(self._lines)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)


class KeepalivedCluster:
    """keepalived with one profile in a lab: `start()`, then the `Cluster` operations."""

    system = "keepalived"

    def __init__(self, lab: Topology, profile: Profile) -> None:
        self.lab = lab
        self.p = profile
        self.profile = profile.name
        self.loss = profile.loss
        self.trials_only = False
        self.dir = lab.run_dir / f"keepalived-{profile.name}"
        self.hosts = {name: lab[name] for name in NODES}
        self.vip = lab.subnet.rsplit(".", 1)[0] + ".100"
        self.vrid = 51
        self.dovecot: dict[str, DovecotInstance] = {}
        self.daemons: dict[str, LabProcess] = {}
        self.watchers: dict[str, FifoWatcher] = {}

    # -- set-up ------------------------------------------------------------------------

    def _files(self, host: Host) -> dict[str, Path]:
        base = self.dir / host.name
        return {
            "conf": base / "keepalived.conf",
            "pid": base / "keepalived.pid",
            "vrrp_pid": base / "vrrp.pid",
            "notify": base / "notify.sh",
            "check": base / "check.sh",
            "fifo": base / "notify.fifo",
        }

    def _write(self, host: Host) -> None:
        f = self._files(host)
        d = self.dovecot[host.name]
        f["notify"].write_text(
            textwrap.dedent(f"""\
            #!/bin/sh
            # keepalived's notify script: $1 = INSTANCE, $2 = name, $3 = new state.
            case "$3" in
                MASTER) exec {d.start_command()} ;;
                BACKUP|FAULT|STOP) exec {d.stop_command()} ;;
            esac
            """)
        )
        # Dovecot listens on every address of the node; the VIP decides who gets clients.
        f["check"].write_text(
            textwrap.dedent(f"""\
            #!/bin/bash
            # POP3 answers +OK on the node that holds the VIP; elsewhere there is nothing to check.
            ip -o -4 addr show dev {IFACE} | grep -qF ' {self.vip}/' || exit 0
            exec 3<>/dev/tcp/{host.addr}/{POP3_PORT} || exit 1
            read -r -t 1 line <&3 || exit 1
            case "$line" in +OK*) exit 0 ;; esac
            exit 1
            """)
        )
        for script in (f["notify"], f["check"]):
            script.chmod(0o755)
        f["conf"].write_text(
            textwrap.dedent(f"""\
            # Written by bench.ka ({self.p.name} profile)
            global_defs {{
                router_id {host.name}
                vrrp_version {self.p.vrrp_version}
                script_user root
                enable_script_security
                notify_fifo {f["fifo"]}
            }}
            vrrp_script chk_pop3 {{
                script "{f["check"]}"
                interval 1
                timeout 1
                fall 2
                rise 1
            }}
            vrrp_instance VI_1 {{
                state BACKUP
                nopreempt
                interface {IFACE}
                virtual_router_id {self.vrid}
                priority {PRIORITY}
                advert_int {self.p.advert_int}
                virtual_ipaddress {{
                    {self.vip}/24 dev {IFACE}
                }}
                track_script {{
                    chk_pop3
                }}
                notify "{f["notify"]}"
            }}
            """)
        )
        done = host.exec(["keepalived", "-t", "-f", str(f["conf"])], check=False)
        if done.returncode != 0:
            raise BenchError(f"keepalived -t {f['conf']}: {done.stderr.strip()}")

    def _daemon(self, host: Host) -> LabProcess:
        f = self._files(host)
        argv = [
            "keepalived", "--vrrp", "--dont-fork", "--log-console", "--log-detail",
            "--no-syslog", "-f", str(f["conf"]), "-p", str(f["pid"]), "-r", str(f["vrrp_pid"]),
        ]  # fmt: skip
        return LabProcess(host, argv, self.dir / f"{host.name}.log")

    def start(self) -> None:
        ensure_installed()
        for name, host in self.hosts.items():
            (self.dir / name).mkdir(parents=True, exist_ok=True)
            (self.dir / name).chmod(0o755)
            d = DovecotInstance(
                self.dir / name / "dovecot",
                POP3_PORT,
                listen="*",
                greeting=f"lab node {name} ready",
                users={USER: PASSWORD},
            )
            d.write_config()
            self.dovecot[name] = d
            self.watchers[name] = FifoWatcher(self._files(host)["fifo"])
            self._write(host)
            self.daemons[name] = self._daemon(host)
        self.dir.chmod(0o755)
        # One after the other, as a cluster comes up in practice. Started together, both
        # time out waiting for adverts at the same instant and become MASTER; the one
        # with the lower address then yields, and its notify scripts (MASTER, BACKUP),
        # which keepalived does not serialise, can race and leave its Dovecot running.
        first, second = NODES
        self.daemons[first].start()
        wait_until(
            lambda: self.state(first) == "MASTER" and self.holds_vip(first),
            self.master_down + 30.0,
            f"keepalived: {first} MASTER with the VIP",
        )
        self.daemons[second].start()
        self.settle(60.0)

    # -- state -------------------------------------------------------------------------

    def holds_vip(self, node: str) -> bool:
        out = run_command(["ip", "-n", self.hosts[node].ns, "-o", "-4", "addr", "show", IFACE])
        return f" {self.vip}/" in out.stdout

    def states(self, node: str) -> list[tuple[float, str]]:
        """(monotonic time received, state) of each state change keepalived announced."""
        return self.watchers[node].states()

    def state(self, node: str) -> str | None:
        states = self.states(node)
        return states[-1][1] if states else None

    def _settled(self) -> str | None:
        for node in NODES:
            if not all(self.daemons[n].running for n in NODES):
                return None
            if self.state(node) != "MASTER" or self.state(other(node)) != "BACKUP":
                continue
            if not self.holds_vip(node) or self.holds_vip(other(node)):
                return None
            if self.dovecot[node].pid is None or self.dovecot[other(node)].pid is not None:
                return None
            return node
        return None

    @property
    def master_down(self) -> float:
        """RFC 3768/5798: 3 adverts, plus the skew (256 - priority) / 256 of one."""
        advert = float(self.p.advert_int)
        return 3 * advert + (256 - PRIORITY) / 256 * advert

    def settle(self, timeout: float) -> str:
        """One MASTER holding the VIP, one BACKUP, and no state change for a while.

        A keepalived that just started may still time out waiting for adverts and
        become MASTER beside the other one (seen at advert_int 0.01): wait that out.
        """
        quiet = self.master_down + 1.0
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.1, deadline - time.monotonic())
            node = wait_until(self._settled, left, "keepalived: one MASTER with the VIP", 0.05)
            seen = {n: len(self.states(n)) for n in NODES}
            time.sleep(quiet)
            if self._settled() == node and seen == {n: len(self.states(n)) for n in NODES}:
                return node
            if time.monotonic() > deadline:
                raise BenchError(f"keepalived: no stable MASTER within {timeout:g}s")

    def client_target(self) -> tuple[str, int]:
        return self.vip, POP3_PORT

    # -- faults --------------------------------------------------------------------------

    def kill(self, node: str) -> None:
        self.daemons[node].signal(signal.SIGKILL)  # the parent and its VRRP child: one group
        self.dovecot[node].kill()
        proc = self.daemons[node].process
        assert proc is not None
        proc.wait(5.0)

    def restart(self, node: str) -> None:
        # A crashed keepalived leaves its VIP behind; remove it as an admin (or a systemd
        # ExecStartPre) would before starting it again.
        if self.holds_vip(node):
            run_command(
                ["ip", "-n", self.hosts[node].ns, "addr", "del", f"{self.vip}/24", "dev", IFACE]
            )
        # Its pid files too: the VRRP child's PID may still be a zombie (orphans are not
        # always reaped here), and keepalived would then refuse to start ("already running").
        f = self._files(self.hosts[node])
        for key in ("pid", "vrrp_pid"):
            f[key].unlink(missing_ok=True)
        self.daemons[node].start()

    def daemon_pids(self, node: str) -> dict[str, int]:
        f = self._files(self.hosts[node])
        pids = {}
        for role, key in (("keepalived", "pid"), ("vrrp", "vrrp_pid")):
            try:
                pid = int(f[key].read_text().strip())
            except (OSError, ValueError):
                continue
            if self.lab.owns_pid(pid):
                pids[role] = pid
        return pids

    def witness_pids(self) -> dict[str, int]:
        return {}

    def role_changes(self) -> list[RoleChange]:
        """Entering or leaving MASTER, as keepalived wrote them to its notify FIFO."""
        changes = []
        for node in NODES:
            serving = False
            for at, state in self.states(node):
                now = state == "MASTER"
                if now != serving:
                    changes.append(RoleChange(node, at, now, state))
                serving = now
        return sorted(changes, key=lambda c: c.at)

    def phases(self, node: str, since: float) -> dict[str, float]:
        """When `node` became MASTER, in seconds after `since`."""
        for at, state in self.states(node):
            if at >= since and state == "MASTER":
                return {"master": round(at - since, 3)}
        return {}

    def diagnose(self) -> dict[str, Any]:
        """Each node's states, VIP and daemon (for a trial that went wrong)."""
        return {
            node: {
                "states": self.states(node)[-5:],
                "holds_vip": self.holds_vip(node),
                "running": self.daemons[node].running,
                "dovecot": self.dovecot[node].pid,
            }
            for node in NODES
        }

    def attempts(self, start: float, end: float) -> int | None:
        """VRRP has no takeover short of becoming MASTER: see `role_changes`."""
        return None

    def settings(self) -> dict[str, Any]:
        return {
            "version": version(),
            "vrrp_version": self.p.vrrp_version,
            "advert_int": float(self.p.advert_int),
            "priority": f"{PRIORITY} on both, state BACKUP, nopreempt",
            "master_down_interval": round(
                3 * float(self.p.advert_int) + (256 - PRIORITY) / 256 * float(self.p.advert_int), 4
            ),
            "vip": f"{self.vip}/24 on {IFACE}",
            "service": "Dovecot started by notify MASTER, stopped by BACKUP/FAULT/STOP",
            "check": "vrrp_script: POP3 +OK on the VIP holder; interval 1 s (the least), fall 2",
        }

    def close(self) -> None:
        for daemon in self.daemons.values():
            try:
                daemon.stop(3.0)
            except LabError:
                daemon.kill()
        for d in self.dovecot.values():
            d.kill()
        for watcher in self.watchers.values():
            watcher.close()
