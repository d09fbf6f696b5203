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
from collections.abc import Iterator
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


def _candidates() -> Iterator[int]:
    """Every candidate in turn, forever, from a random start (two processes rarely collide)."""
    ports = static_ports(ephemeral_floor())
    start = random.randrange(len(ports)) if ports else 0
    return itertools.cycle([*ports[start:], *ports[:start]])


_next_candidate = _candidates()


def free_ports(count: int) -> list[int]:
    """Distinct 127.0.0.1 ports free for both TCP and UDP a moment ago, outside the
    ephemeral range (all held until all are chosen). NoFreePort if there are none."""
    ports: list[int] = []
    candidates = static_ports(ephemeral_floor())
    tries = len(candidates)
    with contextlib.ExitStack() as stack:
        while len(ports) < count:
            if tries == 0:
                raise NoFreePort(
                    f"no port free for TCP and UDP on {LOOPBACK} in {candidates.start}-"
                    f"{candidates.stop - 1} (below net.ipv4.ip_local_port_range): free some"
                )
            tries -= 1
            port = next(_next_candidate)
            try:
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    stack.enter_context(socket.socket(socket.AF_INET, kind)).bind((LOOPBACK, port))
            except OSError:
                continue
            ports.append(port)
    return ports
