"""Free loopback ports for services that bind later, in another process.

A port chosen now and bound seconds later (a standby's POP3 service binds
only when it takes over) must not be one the kernel may meanwhile give to an
outgoing connection as its source port: that connection then holds the port
and the service's bind fails with "address already in use". So the ports
come from below the kernel's ephemeral range (ip_local_port_range), which it
never hands out by itself, and in turn through that space so that a port
handed out once is not handed out again until all the others have been.
"""

import contextlib
import itertools
import random
import socket
from pathlib import Path

LOOPBACK = "127.0.0.1"
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LINUX_EPHEMERAL_FLOOR = 32768
STATIC_SPAN = 12288
"""How many ports below the ephemeral range to use."""


class NoFreePort(OSError):
    """Every candidate port outside the ephemeral range is taken."""


def ephemeral_floor() -> int:
    """The lowest port the kernel hands out as a connection's source port."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return LINUX_EPHEMERAL_FLOOR


def static_ports(floor: int) -> range:
    """The candidate ports: the STATIC_SPAN just below `floor`, above the privileged ports."""
    return range(max(1024, floor - STATIC_SPAN), floor)


class PortCycle:
    """The ports of `space` in turn, forever, from a random start (so that two processes
    rarely hand out the same ones), each checked free when its turn comes."""

    def __init__(self, space: range) -> None:
        self.space = space
        start = random.randrange(len(space)) if space else 0
        self._turns = itertools.cycle([*space[start:], *space[:start]])

    def take(self, count: int) -> list[int]:
        """Distinct ports free for TCP and UDP on 127.0.0.1 a moment ago (all held until all
        are chosen); NoFreePort once a whole round found too few."""
        ports: list[int] = []
        tries = len(self.space)
        with contextlib.ExitStack() as stack:
            while len(ports) < count:
                if tries == 0:
                    raise NoFreePort(
                        f"no port free for TCP and UDP on {LOOPBACK} in {self.space.start}-"
                        f"{self.space.stop - 1} (below net.ipv4.ip_local_port_range): free some"
                    )
                tries -= 1
                port = next(self._turns)
                try:
                    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                        sock = stack.enter_context(socket.socket(socket.AF_INET, kind))
                        sock.bind((LOOPBACK, port))
                except OSError:
                    continue
                ports.append(port)
        return ports


_ports = PortCycle(static_ports(ephemeral_floor()))


def free_ports(count: int) -> list[int]:
    """`count` ports outside the ephemeral range, free a moment ago (see PortCycle.take)."""
    return _ports.take(count)
