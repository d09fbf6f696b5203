"""Fault injection inside the lab's namespaces: partitions, loss, dead hosts, frozen processes.

Packet faults are iptables rules in the hosts' own `LAB-IN`/`LAB-OUT` chains
(see `netns`), never in the root namespace's tables. Every fault is a `Fault`
that `heal()` reverses, and every injection and healing is appended to the
timeline, for a scenario's report.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from failoverd.lab.netns import CHAIN_IN, CHAIN_OUT, Host, LabError, Topology

MAX_FLAP_DURATION = 3600.0
MIN_FLAP_PERIOD = 0.05
MAX_PROBE_COUNT = 10_000


class FaultKind(StrEnum):
    CUT = "cut"
    ISOLATE = "isolate"
    LOSS = "loss"
    LINK_DOWN = "link_down"
    KILL_HOST = "kill_host"
    SIGSTOP = "sigstop"
    FLAP = "flap"


@dataclass(frozen=True, slots=True)
class FaultEvent:
    """One line of the fault timeline."""

    mono: float
    wall: float
    action: Literal["inject", "heal"]
    kind: FaultKind
    detail: str


@dataclass(frozen=True, slots=True)
class _Rule:
    host: Host
    chain: str
    spec: tuple[str, ...]


@dataclass(eq=False)
class Fault:
    """An injected fault; `Faults.heal(fault)` reverses it."""

    kind: FaultKind
    detail: str
    undo: Callable[[], None] = field(repr=False)
    active: bool = True


class Faults:
    """Injects and heals faults in one topology, and keeps the timeline."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self._lock = threading.RLock()
        self._active: list[Fault] = []
        self._timeline: list[FaultEvent] = []
        self._flaps: list[Flap] = []
        self._serial = 0
        topology.add_cleanup(self.stop_flaps)

    @property
    def timeline(self) -> list[FaultEvent]:
        with self._lock:
            return list(self._timeline)

    @property
    def active(self) -> list[Fault]:
        with self._lock:
            return list(self._active)

    def record(self, action: Literal["inject", "heal"], kind: FaultKind, detail: str) -> None:
        """Append an event to the timeline."""
        with self._lock:
            self._timeline.append(FaultEvent(time.monotonic(), time.time(), action, kind, detail))

    def _inject(self, kind: FaultKind, detail: str, undo: Callable[[], None]) -> Fault:
        fault = Fault(kind, detail, undo)
        with self._lock:
            self._active.append(fault)
            self.record("inject", kind, detail)
        return fault

    # -- packet filters -------------------------------------------------------------------

    def _apply(self, rules: Sequence[_Rule], op: Literal["-A", "-D"]) -> None:
        """One iptables-restore per host: the host's rules change at once."""
        for host in dict.fromkeys(r.host for r in rules):
            lines = [f"{op} {r.chain} {' '.join(r.spec)}" for r in rules if r.host is host]
            host.exec(
                ["iptables-restore", "-w", "5", "--noflush"],
                input="*filter\n" + "\n".join(lines) + "\nCOMMIT\n",
            )

    def _filter(self, kind: FaultKind, detail: str, rules: list[_Rule]) -> Fault:
        with self._lock:
            self._serial += 1
            tag = ("-m", "comment", "--comment", f"lab-{self._serial}")
            rules = [_Rule(r.host, r.chain, (*r.spec, *tag, "-j", "DROP")) for r in rules]
            self._apply(rules, "-A")
            return self._inject(kind, detail, lambda: self._apply(rules, "-D"))

    def cut(self, a: Host, b: Host) -> Fault:
        """Drop everything between `a` and `b`, both ways, on both hosts (TCP and UDP alike)."""
        rules = [
            _Rule(x, chain, (flag, y.addr))
            for x, y in ((a, b), (b, a))
            for chain, flag in ((CHAIN_IN, "-s"), (CHAIN_OUT, "-d"))
        ]
        return self._filter(FaultKind.CUT, f"{a.name} <-> {b.name}", rules)

    def isolate(self, host: Host) -> Fault:
        """Drop all of `host`'s traffic except on its own loopback."""
        rules = [
            _Rule(host, CHAIN_IN, ("!", "-i", "lo")),
            _Rule(host, CHAIN_OUT, ("!", "-o", "lo")),
        ]
        return self._filter(FaultKind.ISOLATE, host.name, rules)

    def loss(self, a: Host, b: Host, probability: float) -> Fault:
        """Drop each packet between `a` and `b` with `probability`, in each direction.

        Both rules are on `a` (its OUTPUT to b, its INPUT from b), so each
        direction is filtered exactly once.
        """
        if not 0 < probability <= 1:
            raise ValueError(f"probability must be in (0, 1], got {probability}")
        stat = ("-m", "statistic", "--mode", "random", "--probability", f"{probability:.6f}")
        rules = [
            _Rule(a, CHAIN_OUT, ("-d", b.addr, *stat)),
            _Rule(a, CHAIN_IN, ("-s", b.addr, *stat)),
        ]
        return self._filter(FaultKind.LOSS, f"{a.name} <-> {b.name} {probability:.0%}", rules)

    # -- hosts and processes ----------------------------------------------------------------

    def link_down(self, host: Host) -> Fault:
        """Take `host`'s network interface down (its loopback stays up)."""
        host.link_down()
        return self._inject(FaultKind.LINK_DOWN, host.name, host.link_up)

    def kill_host(self, host: Host) -> Fault:
        """The machine dies: SIGKILL every process in `host`, then its link goes down.

        Healing brings the link back; restarting processes is the caller's job.
        Under the lock: the lab's own iptables commands in `host` (a flap
        running in another thread) must not be among the processes killed.
        """
        with self._lock:
            killed = host.kill_processes()
            host.link_down()
        detail = f"{host.name}: {len(killed)} processes killed, link down"
        return self._inject(FaultKind.KILL_HOST, detail, host.link_up)

    def sigstop(self, pid: int) -> Fault:
        """Freeze a lab process (SIGSTOP); healing (or `sigcont`) resumes it."""
        if not self.topology.owns_pid(pid):
            raise LabError(f"pid {pid} is not a process of lab {self.topology.run_id}")
        os.kill(pid, signal.SIGSTOP)
        return self._inject(FaultKind.SIGSTOP, f"pid {pid}", lambda: _resume(pid))

    def sigcont(self, pid: int) -> None:
        """Resume a process frozen by `sigstop`."""
        for fault in self.active:
            if fault.kind is FaultKind.SIGSTOP and fault.detail == f"pid {pid}":
                self.heal(fault)
                return
        raise LabError(f"pid {pid} was not stopped by this lab")

    # -- healing --------------------------------------------------------------------------------

    def heal(self, fault: Fault) -> None:
        """Reverse `fault` (nothing if already healed)."""
        with self._lock:
            if not fault.active:
                return
            fault.active = False
            self._active.remove(fault)
            if not self.topology.closed:
                fault.undo()
            self.record("heal", fault.kind, fault.detail)

    def heal_all(self) -> None:
        """Reverse every active fault, newest first (flaps are stopped first)."""
        self.stop_flaps()
        for fault in reversed(self.active):
            self.heal(fault)

    # -- flapping ---------------------------------------------------------------------------------

    def flap(self, a: Host, b: Host, period: float, duration: float) -> Flap:
        """Cut and heal the link between `a` and `b` every `period` seconds, for `duration`.

        Runs in a thread that stops by itself (link healed) after `duration`.
        """
        if not MIN_FLAP_PERIOD <= period <= duration <= MAX_FLAP_DURATION:
            raise ValueError(
                f"need {MIN_FLAP_PERIOD} <= period ({period}) <= duration ({duration}) "
                f"<= {MAX_FLAP_DURATION}"
            )
        flap = Flap(self, a, b, period, duration)
        with self._lock:
            self._flaps.append(flap)
        flap.start()
        return flap

    def stop_flaps(self) -> None:
        with self._lock:
            flaps = list(self._flaps)
        for flap in flaps:
            flap.stop()


class Flap:
    """A link going down and up on a timer; see `Faults.flap`."""

    def __init__(self, faults: Faults, a: Host, b: Host, period: float, duration: float) -> None:
        self._faults = faults
        self.a = a
        self.b = b
        self.period = period
        self.duration = duration
        self.cycles = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"flap {a.name}<->{b.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        detail = f"{self.a.name} <-> {self.b.name} every {self.period}s for {self.duration}s"
        self._faults.record("inject", FaultKind.FLAP, detail)
        deadline = time.monotonic() + self.duration
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                fault = self._faults.cut(self.a, self.b)
                try:
                    self._stop.wait(min(self.period, max(0.0, deadline - time.monotonic())))
                finally:
                    self._faults.heal(fault)
                self.cycles += 1
                self._stop.wait(min(self.period, max(0.0, deadline - time.monotonic())))
        except Exception as e:  # reported through `error` and `join`
            self.error = e
        finally:
            self._faults.record("heal", FaultKind.FLAP, detail)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop early; the link is healed when this returns."""
        self._stop.set()
        self.join(timeout)

    def join(self, timeout: float) -> None:
        """Wait for the end; LabError if it does not end in time or failed."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise LabError(f"flap {self.a.name}<->{self.b.name} still running after {timeout}s")
        if self.error is not None:
            raise LabError(f"flap {self.a.name}<->{self.b.name} failed: {self.error}")


def _resume(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # killed while stopped: nothing to resume
        os.kill(pid, signal.SIGCONT)


@dataclass(frozen=True, slots=True)
class UdpProbe:
    """What a `probe_udp` ping-pong saw: datagrams sent, arrived at the far end, echoed back."""

    sent: int
    arrived: int
    returned: int

    @property
    def forward_loss(self) -> float:
        return 1 - self.arrived / self.sent

    @property
    def return_loss(self) -> float:
        """Loss of the echoes (1.0 when nothing arrived to be echoed)."""
        return 1 - self.returned / self.arrived if self.arrived else 1.0


def probe_udp(
    src: Host, dst: Host, count: int = 20, *, gap: float = 0.0005, wait: float = 0.3
) -> UdpProbe:
    """Send `count` datagrams from `src` to `dst`, which echoes each one: loss per direction.

    Runs in this process on sockets made inside the two namespaces; bounded
    by `count` and by `count * gap + wait` seconds.
    """
    if not 0 < count <= MAX_PROBE_COUNT:
        raise ValueError(f"count must be in 1..{MAX_PROBE_COUNT}, got {count}")
    arrived: set[int] = set()
    returned: set[int] = set()
    with src.socket(type=socket.SOCK_DGRAM) as tx, dst.socket(type=socket.SOCK_DGRAM) as echo:
        echo.bind((dst.addr, 0))
        echo.settimeout(0.02)
        tx.bind((src.addr, 0))
        done = threading.Event()

        def serve() -> None:
            while not done.is_set():
                try:
                    data, peer = echo.recvfrom(64)
                except TimeoutError:
                    continue
                except OSError:
                    return
                arrived.add(struct.unpack("!I", data)[0])
                with contextlib.suppress(OSError):  # e.g. EPERM from an OUTPUT DROP rule
                    echo.sendto(data, peer)

        server = threading.Thread(target=serve, name="udp echo", daemon=True)
        server.start()
        try:
            target = echo.getsockname()
            for seq in range(count):
                with contextlib.suppress(OSError):
                    tx.sendto(struct.pack("!I", seq), target)
                time.sleep(gap)
            deadline = time.monotonic() + wait
            while len(returned) < count and (left := deadline - time.monotonic()) > 0:
                tx.settimeout(left)
                try:
                    returned.add(struct.unpack("!I", tx.recv(64))[0])
                except (TimeoutError, OSError):
                    break
        finally:
            done.set()
            server.join(5.0)
    return UdpProbe(count, len(arrived), len(returned))
