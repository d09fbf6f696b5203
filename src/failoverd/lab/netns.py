"""Hosts in network namespaces on one bridge: the lab's topology.

Every host is a namespace with `lo` and one veth (`eth0`) to a bridge that
lives in a namespace of its own, so nothing is created in the root namespace:
the lab's addresses and iptables rules exist only inside namespaces it made.

A run claims a unique id (`<prefix><4 hex>`) with an owner file in
`/run/failoverd-lab/`, so that `cleanup_stale()` can tell the leftovers of a
run whose process died from the namespaces of a run that is still going.
Teardown (`Topology.close`) kills every process in the lab's namespaces,
deletes them (which removes the veths) and is idempotent; it runs on leaving
the `with` block, at interpreter exit, and on SIGINT/SIGTERM/SIGHUP.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self

HOST_NAMES = ("primary", "standby", "witness", "lb", "client")
LAB_PREFIX = "fod"
NETNS_DIR = Path("/run/netns")
OWNERS_DIR = Path("/run/failoverd-lab")
IFACE = "eth0"
BRIDGE = "br0"
# The chains every host's INPUT/OUTPUT jump to first; faults add their rules here.
CHAIN_IN = "LAB-IN"
CHAIN_OUT = "LAB-OUT"

_CLONE_NEWNET = 0x40000000
_COMMAND_TIMEOUT = 10.0
_KILL_TIMEOUT = 5.0


class LabError(Exception):
    """A lab operation failed."""


class LabUnavailable(LabError):
    """This machine cannot run the lab (not root, no `ip netns`, no iptables statistic match)."""


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "(no output)"


def run_command(
    argv: Sequence[str],
    *,
    input: str | None = None,
    check: bool = True,
    timeout: float = _COMMAND_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; LabError (with its stderr) when it fails and `check`."""
    try:
        done = subprocess.run(
            list(argv), input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LabError(f"{' '.join(argv)}: {e}") from e
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(argv)} exited with {done.returncode}: {_one_line(done.stderr)}")
    return done


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def entered(ns: str) -> Iterator[None]:
    """Move the calling thread (only it) into namespace `ns` for the block.

    Sockets made inside the block stay in `ns` afterwards, from any thread:
    this is how the test process serves or probes inside a host without a
    subprocess.
    """
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(NETNS_DIR / ns, os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(own)
        finally:
            os.close(target)
    finally:
        os.close(own)


def pids_in_netns(*namespaces: str) -> list[int]:
    """Processes whose network namespace is one of `namespaces` (as `ip netns pids` finds them)."""
    keys = set()
    for ns in namespaces:
        with contextlib.suppress(FileNotFoundError):
            st = os.stat(NETNS_DIR / ns)
            keys.add((st.st_dev, st.st_ino))
    if not keys:
        return []
    me = os.getpid()
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            s = os.stat(f"/proc/{entry.name}/ns/net")
        except OSError:  # gone, or a zombie (no namespaces left)
            continue
        if (s.st_dev, s.st_ino) in keys:
            pids.append(int(entry.name))
    return pids


def _kill_all_in(namespaces: Sequence[str], reap: Callable[[], None]) -> None:
    """SIGKILL every process in the namespaces until none is left, and none of those
    killed is still exiting (bounded).

    A dying process leaves its network namespace before it has finished exiting, so
    an empty namespace alone does not mean its processes are gone.
    """
    deadline = time.monotonic() + _KILL_TIMEOUT
    killed: set[int] = set()
    while True:
        pids = pids_in_netns(*namespaces)
        killed = {pid for pid in killed if _exiting(pid)}
        if not pids and not killed:
            return
        if time.monotonic() > deadline:
            left = sorted(set(pids) | killed)
            raise LabError(f"processes {left} survived SIGKILL in {', '.join(namespaces)}")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed.update(pids)
        reap()
        time.sleep(0.01)


def _exiting(pid: int) -> bool:
    """Still there and not yet a zombie (a zombie has exited; its parent may never reap it)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()


def _destroy(namespaces: Sequence[str], reap: Callable[[], None] = lambda: None) -> None:
    _kill_all_in(namespaces, reap)
    for ns in namespaces:
        if (NETNS_DIR / ns).exists():
            run_command(["ip", "netns", "delete", ns])


def _process_start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (ticks since boot): tells a PID from a reused one."""
    stat = _stat(pid)
    return None if stat is None else int(stat[19])


def _owner_alive(owner_file: Path) -> bool:
    try:
        owner = json.loads(owner_file.read_text())
    except (OSError, ValueError):
        return False
    return bool(_process_start_time(int(owner["pid"])) == owner["start"])


def _run_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^({re.escape(prefix)}[0-9a-f]{{4}})(?:-|\.json$)")


def cleanup_stale(prefix: str = LAB_PREFIX) -> list[str]:
    """Remove the namespaces (and their processes) of runs whose owner process is gone.

    Runs of live processes (other test sessions) are left alone. Returns the
    namespaces removed.
    """
    pattern = _run_pattern(prefix)
    runs: dict[str, list[str]] = {}
    for directory in (NETNS_DIR, OWNERS_DIR):
        names = os.listdir(directory) if directory.is_dir() else []
        for name in names:
            if m := pattern.match(name):
                runs.setdefault(m.group(1), [])
                if directory == NETNS_DIR:
                    runs[m.group(1)].append(name)
    removed = []
    for run_id, namespaces in sorted(runs.items()):
        owner_file = OWNERS_DIR / f"{run_id}.json"
        if _owner_alive(owner_file):
            continue
        _destroy(namespaces)
        with contextlib.suppress(OSError, ValueError, KeyError):
            owned_dir = json.loads(owner_file.read_text())["owned_run_dir"]
            if owned_dir:
                shutil.rmtree(owned_dir, ignore_errors=True)
        owner_file.unlink(missing_ok=True)
        removed.extend(namespaces)
    return removed


def signal_group(proc: subprocess.Popen[Any], sig: signal.Signals) -> None:
    """Send `sig` to the process group of a lab process (started with its own session).

    Only while we have not reaped the leader: until then its PID, and so the
    group id, cannot belong to anyone else.
    """
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)


def terminate(proc: subprocess.Popen[Any], timeout: float) -> int:
    """SIGTERM the process group, SIGKILL it after `timeout`; the exit code."""
    signal_group(proc, signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        signal_group(proc, signal.SIGKILL)
        return proc.wait(_KILL_TIMEOUT)


class LabPart:
    """A part of the lab built by `start()` and torn down by `close()`; `with` does both.

    A part starts only once, and one that fails half-built closes itself before the
    error goes on, so that nothing it made is left behind.
    """

    _started = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> Self:
        if self._started:
            raise LabError(f"a {type(self).__name__} starts only once")
        self._started = True
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _build(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class Host:
    """One machine of the lab: a network namespace with `lo` and `eth0` at `addr`."""

    def __init__(self, topology: Topology, name: str, ns: str, addr: str) -> None:
        self.topology = topology
        self.name = name
        self.ns = ns
        self.addr = addr

    def __repr__(self) -> str:
        return f"Host({self.name!r}, ns={self.ns!r}, addr={self.addr!r})"

    def exec(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        check: bool = True,
        timeout: float = _COMMAND_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in this host to completion."""
        return run_command(
            ["ip", "netns", "exec", self.ns, *argv], input=input, check=check, timeout=timeout
        )

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a process in this host, in a session of its own; the lab tracks and kills it."""
        kwargs.setdefault("start_new_session", True)
        proc: subprocess.Popen[Any] = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, *argv], **kwargs
        )
        self.topology.track(self, proc)
        return proc

    def pids(self) -> list[int]:
        """Every process running in this host."""
        return pids_in_netns(self.ns)

    def kill_processes(self) -> list[int]:
        """SIGKILL every process in this host; the PIDs that were killed."""
        pids = self.pids()
        for proc in self.topology.processes(self):
            signal_group(proc, signal.SIGKILL)
        _kill_all_in([self.ns], self.topology.reap)
        for proc in self.topology.processes(self):
            proc.wait(_KILL_TIMEOUT)  # dead already: collect the exit status
        return pids

    def link_down(self) -> None:
        run_command(["ip", "-n", self.ns, "link", "set", IFACE, "down"])

    def link_up(self) -> None:
        run_command(["ip", "-n", self.ns, "link", "set", IFACE, "up"])

    def entered(self) -> contextlib.AbstractContextManager[None]:
        """The calling thread inside this host for a `with` block (see `entered`)."""
        return entered(self.ns)

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM) -> socket.socket:
        """A socket of this host's network stack, usable from the calling process."""
        with self.entered():
            return socket.socket(family, type)


_live: set[Topology] = set()


def _teardown_all() -> None:
    for topology in list(_live):
        topology.close()


def _on_signal(previous: Any, signum: int, frame: FrameType | None) -> None:
    _teardown_all()
    if callable(previous):
        previous(signum, frame)  # e.g. Python's default SIGINT handler: KeyboardInterrupt
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


@functools.cache
def _install_handlers() -> None:
    """Once per process: teardown at exit and on SIGINT/SIGTERM/SIGHUP."""
    atexit.register(_teardown_all)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread; atexit still runs
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(sig)
        if previous is not signal.SIG_IGN:
            signal.signal(sig, functools.partial(_on_signal, previous))


class Topology(LabPart):
    """The lab: a bridge namespace and one namespace per host, torn down on exit.

    ```
    with Topology() as lab:
        lab.primary.exec(["ip", "addr"])
    ```
    """

    def __init__(
        self,
        run_dir: Path | None = None,
        *,
        prefix: str = LAB_PREFIX,
        hosts: Sequence[str] = HOST_NAMES,
    ) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9]{0,7}", prefix):
            raise ValueError(f"prefix {prefix!r}: 1-8 lowercase letters/digits, starting a-z")
        if len(set(hosts)) != len(hosts) or not all(re.fullmatch(r"[a-z]{1,12}", h) for h in hosts):
            raise ValueError(f"host names must be unique, 1-12 lowercase letters: {hosts}")
        self.prefix = prefix
        self._host_names = tuple(hosts)
        self._requested_run_dir = run_dir
        self.run_id = ""
        self.subnet = ""
        self.hosts: dict[str, Host] = {}
        self._run_dir: Path | None = None
        self._owned_run_dir = False
        self._owner_file: Path | None = None
        self._namespaces: list[str] = []
        self._procs: list[tuple[Host, subprocess.Popen[Any]]] = []
        self._cleanups: list[Callable[[], None]] = []
        self._lock = threading.RLock()
        self._closed = False

    @staticmethod
    def require() -> None:
        """LabUnavailable, with one line saying why, unless this machine can run the lab."""
        if os.geteuid() != 0:
            raise LabUnavailable(
                f"the network lab needs root (namespaces, iptables); running as uid {os.geteuid()}"
            )
        for tool, package in (
            ("ip", "iproute2"),
            ("iptables", "iptables"),
            ("iptables-restore", "iptables"),
            ("unshare", "util-linux"),
        ):
            if shutil.which(tool) is None:
                raise LabUnavailable(
                    f"the network lab needs `{tool}` (Debian: apt-get install {package})"
                )
        done = run_command(["ip", "netns", "list"], check=False)
        if done.returncode != 0:
            raise LabUnavailable(f"`ip netns` is unavailable: {_one_line(done.stderr)}")
        # In a throw-away namespace: proves kernel support, touches no real table.
        done = run_command(
            ["unshare", "--net", "iptables", "-w", "5", "-A", "OUTPUT", "-m", "statistic",
             "--mode", "random", "--probability", "0.5", "-j", "ACCEPT"],
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise LabUnavailable(
                f"iptables lacks the `statistic` match (needed for packet loss): "
                f"{_one_line(done.stderr)}"
            )

    # -- lifecycle -----------------------------------------------------------------------

    def _build(self) -> None:
        """Create the bridge and the hosts (`start()`, which removes them on a failure)."""
        self.require()
        cleanup_stale(self.prefix)  # leftovers of runs whose process died
        _install_handlers()
        _live.add(self)
        self._claim_run()
        self._build_network()

    def _claim_run(self) -> None:
        if self._requested_run_dir is None:
            self._run_dir = Path(tempfile.mkdtemp(prefix="failoverd-lab-"))
            self._run_dir.chmod(0o755)  # services running as other users (dovecot) need +x
            self._owned_run_dir = True
        else:
            self._run_dir = self._requested_run_dir
            self._run_dir.mkdir(parents=True, exist_ok=True)
        OWNERS_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        owner = {
            "pid": os.getpid(),
            "start": _process_start_time(os.getpid()),
            "owned_run_dir": str(self._run_dir) if self._owned_run_dir else None,
        }
        # Claimed with its content in one step (link fails if taken): a concurrent
        # cleanup_stale never sees an empty owner file, which it would take for a dead run.
        with tempfile.NamedTemporaryFile("w", dir=OWNERS_DIR, suffix=".tmp", delete=False) as f:
            json.dump(owner, f)
        try:
            for _ in range(100):
                run_id = f"{self.prefix}{secrets.token_hex(2)}"
                if NETNS_DIR.is_dir() and any(
                    n.startswith(f"{run_id}-") for n in os.listdir(NETNS_DIR)
                ):
                    continue
                path = OWNERS_DIR / f"{run_id}.json"
                try:
                    os.link(f.name, path)
                except FileExistsError:
                    continue
                self.run_id = run_id
                self._owner_file = path
                return
        finally:
            os.unlink(f.name)
        raise LabError(f"no free run id with prefix {self.prefix!r} after 100 tries")

    def _add_namespace(self, ns: str) -> None:
        self._namespaces.append(ns)  # before creating: a half-made run is still cleaned
        run_command(["ip", "netns", "add", ns])

    def _build_network(self) -> None:
        octet = int(self.run_id[-4:], 16) % 250 + 1
        self.subnet = f"10.231.{octet}.0/24"
        bridge_ns = self.bridge_ns
        self._add_namespace(bridge_ns)
        bridge_batch = [
            "link set lo up",
            f"link add {BRIDGE} type bridge forward_delay 0",
            f"link set {BRIDGE} up",
        ]
        for i, name in enumerate(self._host_names):
            ns = f"{self.run_id}-{name}"
            self.hosts[name] = Host(self, name, ns, f"10.231.{octet}.{11 + i}")
            self._add_namespace(ns)
            bridge_batch += [
                f"link add v-{name} type veth peer name {IFACE} netns {ns}",
                f"link set v-{name} master {BRIDGE} up",
            ]
        run_command(["ip", "-n", bridge_ns, "-batch", "-"], input="\n".join(bridge_batch) + "\n")
        chains = (
            f"*filter\n:{CHAIN_IN} - [0:0]\n:{CHAIN_OUT} - [0:0]\n"
            f"-I INPUT 1 -j {CHAIN_IN}\n-I OUTPUT 1 -j {CHAIN_OUT}\nCOMMIT\n"
        )
        for host in self.hosts.values():
            run_command(
                ["ip", "-n", host.ns, "-batch", "-"],
                input=f"link set lo up\naddr add {host.addr}/24 dev {IFACE}\nlink set {IFACE} up\n",
            )
            host.exec(["iptables-restore", "-w", "5", "--noflush"], input=chains)

    def close(self) -> None:
        """Kill the lab's processes and delete its namespaces. Idempotent.

        Every step tolerates having been done already, so a signal arriving in
        the middle of a close (whose handler closes again) leaves no leftovers.
        """
        if self._closed or not self._started:
            return
        errors: list[str] = []
        for cleanup in reversed(self._cleanups):
            try:
                cleanup()
            except Exception as e:  # the namespaces must go in any case
                errors.append(f"{cleanup}: {e}")
        for proc in self.processes():
            signal_group(proc, signal.SIGKILL)
        try:
            _destroy(self._namespaces, self.reap)
        except LabError as e:
            errors.append(str(e))
        for proc in self.processes():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(_KILL_TIMEOUT)
        if self._owner_file is not None:
            self._owner_file.unlink(missing_ok=True)
        if self._owned_run_dir and self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
        _live.discard(self)
        self._closed = True
        if errors:
            raise LabError(f"teardown of lab {self.run_id}: {'; '.join(errors)}")

    # -- access ----------------------------------------------------------------------------

    @property
    def bridge_ns(self) -> str:
        return f"{self.run_id}-br"

    @property
    def namespaces(self) -> list[str]:
        """Every namespace of this run (bridge first)."""
        return list(self._namespaces)

    @property
    def run_dir(self) -> Path:
        """Directory for this run's configs, logs and sockets."""
        if self._run_dir is None:
            raise LabError("the topology is not started")
        return self._run_dir

    @property
    def closed(self) -> bool:
        return self._closed

    def __getitem__(self, name: str) -> Host:
        try:
            return self.hosts[name]
        except KeyError:
            raise LabError(f"no host {name!r} in this lab ({', '.join(self.hosts)})") from None

    @property
    def primary(self) -> Host:
        return self["primary"]

    @property
    def standby(self) -> Host:
        return self["standby"]

    @property
    def witness(self) -> Host:
        return self["witness"]

    @property
    def lb(self) -> Host:
        return self["lb"]

    @property
    def client(self) -> Host:
        return self["client"]

    def owns_pid(self, pid: int) -> bool:
        """Whether `pid` runs in one of this lab's namespaces (so the lab may signal it)."""
        return pid in pids_in_netns(*self._namespaces)

    # -- processes and cleanups --------------------------------------------------------------

    def track(self, host: Host, proc: subprocess.Popen[Any]) -> None:
        with self._lock:
            self._procs.append((host, proc))

    def processes(self, host: Host | None = None) -> list[subprocess.Popen[Any]]:
        """The processes the lab started (in `host`, or anywhere)."""
        with self._lock:
            return [p for h, p in self._procs if host is None or h is host]

    def reap(self) -> None:
        """Collect the exit status of finished lab processes (no zombies)."""
        for proc in self.processes():
            proc.poll()

    def add_cleanup(self, fn: Callable[[], None]) -> None:
        """Run `fn` at teardown, before processes are killed (last added runs first)."""
        self._cleanups.append(fn)


class LabProcess:
    """A long-running process of the lab in one host, with its output in a log file."""

    def __init__(self, host: Host, argv: Sequence[str], log_path: Path) -> None:
        self.host = host
        self.argv = list(argv)
        self.log_path = log_path
        self.process: subprocess.Popen[Any] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.host.name}, pid={self.pid})"

    def start(self) -> None:
        if self.running:
            raise LabError(f"{self!r} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} start: {' '.join(self.argv)}\n")
            log.flush()
            self.process = self.host.popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        """Send `sig` to the process's group (it and the children it did not detach)."""
        if self.process is not None:
            signal_group(self.process, sig)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; the exit code (None if never started)."""
        return None if self.process is None else terminate(self.process, timeout)

    def kill(self) -> None:
        """SIGKILL, and wait for the exit."""
        if self.process is not None:
            signal_group(self.process, signal.SIGKILL)
            self.process.wait(_KILL_TIMEOUT)
