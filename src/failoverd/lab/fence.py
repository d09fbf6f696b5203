"""Power fencing in the lab: a "power switch" in one host, and the fence command that asks it.

Real fencing (IPMI, a PDU, a cloud API) is reached over a network of its
own; it works when the node that fences can reach the device, whatever
happened to the link between the two nodes. The lab models that with a
`PowerSwitch` serving in the `lb` host: a node that can reach `lb` can power
its peer off, a node cut from everything cannot.

The fence command, run by failoverd as scripts.fence inside a node's
namespace, is

    python -m failoverd.lab.fence --switch LB_ADDR:PORT TARGET

It exits 0 only once the switch answers that TARGET is off. The switch runs
in the lab's own process (a thread with its socket in `lb`); powering off is
`Faults.kill_host` (every process of the host killed, its link down), so it
appears in the fault timeline, and healing the fault is powering on again.
It only ever acts on the hosts it was given.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import threading
from collections.abc import Callable, Mapping, Sequence

from failoverd.lab.netns import Host

SWITCH_PORT = 7999
_MAX_LINE = 256
_ACCEPT_POLL = 0.2
_CLIENT_TIMEOUT = 5.0


class PowerSwitch:
    """Serves `OFF <host>` requests on `host.addr:port`; `power_off` does the deed.

    `power_off(target)` returns a one-line description of what it did; it
    runs in the switch's thread, one request at a time.
    """

    def __init__(
        self,
        host: Host,
        targets: Mapping[str, Host],
        power_off: Callable[[Host], str],
        *,
        port: int = SWITCH_PORT,
    ) -> None:
        self.host = host
        self.targets = dict(targets)
        self.port = port
        self.requests: list[str] = []
        self._power_off = power_off
        self._stop = threading.Event()
        self._server = host.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind((host.addr, port))
        self._server.listen(4)
        self._server.settimeout(_ACCEPT_POLL)
        self._thread = threading.Thread(target=self._serve, name="power switch", daemon=True)

    @property
    def address(self) -> str:
        return f"{self.host.addr}:{self.port}"

    def command(self, target: str) -> list[str]:
        """The fence command line that powers `target` off through this switch."""
        return [
            *(sys.executable, "-m", "failoverd.lab.fence"),
            *("--switch", self.address, "--timeout", "2", target),
        ]

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(_CLIENT_TIMEOUT + 1)
        self._server.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(_CLIENT_TIMEOUT)
                with contextlib.suppress(OSError):
                    conn.sendall(self._answer(_read_line(conn)).encode() + b"\n")

    def _answer(self, request: str) -> str:
        verb, _, name = request.partition(" ")
        target = self.targets.get(name)
        if verb != "OFF" or target is None:
            return f"ERR expected OFF <{'|'.join(self.targets)}>, got {request[:60]!r}"
        self.requests.append(name)
        try:
            return f"OK {self._power_off(target)}"
        except Exception as e:  # the fence failed: the caller must not start services
            return f"ERR powering {name} off failed: {e}"


def _read_line(conn: socket.socket) -> str:
    data = b""
    while b"\n" not in data and len(data) < _MAX_LINE:
        chunk = conn.recv(_MAX_LINE)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0].decode(errors="replace").strip()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m failoverd.lab.fence", description="Power a lab host off via the switch."
    )
    parser.add_argument("--switch", required=True, help="HOST:PORT of the lab's power switch")
    parser.add_argument("--timeout", type=float, default=_CLIENT_TIMEOUT)
    parser.add_argument("target", help="the host to power off (primary or standby)")
    args = parser.parse_args(argv)
    host, _, port = args.switch.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=args.timeout) as conn:
            conn.sendall(f"OFF {args.target}\n".encode())
            answer = _read_line(conn)
    except OSError as e:
        print(f"fence {args.target}: power switch {args.switch} unreachable: {e}", file=sys.stderr)
        return 1
    if not answer.startswith("OK"):
        print(f"fence {args.target}: {answer or 'no answer'}", file=sys.stderr)
        return 1
    print(f"fence {args.target}: {answer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
