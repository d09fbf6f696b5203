"""HAProxy in the lab's `lb` host: TCP (POP3) in front of the two nodes.

Both nodes are normal servers (not `backup`): either may be the active one,
and HAProxy sends traffic to whichever answers 200 on `GET /health` (each
node's failoverd API). A node that answers 503 is taken out after `fall`
checks; with a single active node all traffic goes there.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from failoverd.lab.netns import Host, LabError, LabProcess, LabUnavailable, run_command

POP3_PORT = 110
API_PORT = 8790
_UNIX_PATH_MAX = 107
_POLL = 0.02


@dataclass(frozen=True, slots=True)
class Backend:
    """One server of the backend: the service at `address:port`, health at `check_port`."""

    name: str
    address: str
    port: int
    check_port: int


class HAProxy(LabProcess):
    """A HAProxy process in `host` with its config, log and admin socket in `run_dir`."""

    frontend = "service"
    backend = "nodes"

    def __init__(
        self,
        host: Host,
        run_dir: Path,
        backends: Sequence[Backend],
        *,
        port: int = POP3_PORT,
        check_path: str = "/health",
        inter: str = "100ms",
    ) -> None:
        if not backends:
            raise ValueError("HAProxy needs at least one backend")
        self.run_dir = run_dir
        self.backends = list(backends)
        self.port = port
        self.check_path = check_path
        self.inter = inter
        self.config_path = run_dir / "haproxy.cfg"
        self.socket_path = run_dir / "haproxy.sock"
        if len(str(self.socket_path)) > _UNIX_PATH_MAX:
            raise LabError(f"{self.socket_path}: too long for a unix socket; use a shorter run_dir")
        super().__init__(
            host, ["haproxy", "-db", "-f", str(self.config_path)], run_dir / "haproxy.log"
        )

    @classmethod
    def for_nodes(
        cls,
        lb: Host,
        nodes: Sequence[Host],
        run_dir: Path,
        *,
        service_port: int = POP3_PORT,
        api_port: int = API_PORT,
        port: int = POP3_PORT,
    ) -> HAProxy:
        """HAProxy on `lb`: `port` to each node's `service_port`, health on `api_port`."""
        backends = [Backend(n.name, n.addr, service_port, api_port) for n in nodes]
        return cls(lb, run_dir, backends, port=port)

    @property
    def address(self) -> tuple[str, int]:
        """Where clients connect (inside the lab)."""
        return self.host.addr, self.port

    def config_text(self) -> str:
        servers = "\n".join(
            f"    server {b.name} {b.address}:{b.port} check port {b.check_port} "
            f"inter {self.inter} fall 2 rise 1"
            for b in self.backends
        )
        return f"""\
# Written by failoverd.lab.haproxy
global
    log stdout format raw local0 info
    stats socket {self.socket_path} mode 600 level admin

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 100ms
    timeout client 5s
    timeout server 5s
    retries 2
    option redispatch 1

frontend {self.frontend}
    bind {self.host.addr}:{self.port}
    default_backend {self.backend}

backend {self.backend}
    option httpchk GET {self.check_path}
{servers}
"""

    def start(self, timeout: float = 5.0) -> None:
        """Write and validate the config, start HAProxy and wait until its admin socket answers."""
        if shutil.which("haproxy") is None:
            raise LabUnavailable("the lab needs `haproxy` (Debian: apt-get install haproxy)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text())
        run_command(["haproxy", "-c", "-q", "-f", str(self.config_path)])
        self.socket_path.unlink(missing_ok=True)
        super().start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.command("show info")
                return
            except OSError as e:
                if not self.running:
                    raise LabError(f"haproxy exited; see {self.log_path}") from e
                if time.monotonic() > deadline:
                    raise LabError(f"haproxy's admin socket silent after {timeout}s") from e
                time.sleep(_POLL)

    def command(self, cmd: str) -> str:
        """One command on the admin socket (e.g. `show stat`, `disable server nodes/primary`)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2.0)
            s.connect(str(self.socket_path))
            s.sendall(cmd.encode() + b"\n")
            chunks = []
            while data := s.recv(65536):
                chunks.append(data)
        return b"".join(chunks).decode()

    def server_states(self) -> dict[str, str]:
        """Each server's status from `show stat`: "UP", "DOWN", "UP 1/2", "MAINT", ...

        The backend as a whole is under the key "BACKEND".
        """
        lines = [line for line in self.command("show stat").splitlines() if line]
        if not lines or not lines[0].startswith("# "):
            raise LabError(f"unexpected `show stat` output: {lines[:1]}")
        header = lines[0][2:].split(",")
        pxname, svname, status = (header.index(k) for k in ("pxname", "svname", "status"))
        states = {}
        for line in lines[1:]:
            fields = line.split(",")
            if fields[pxname] == self.backend:
                states[fields[svname]] = fields[status]
        return states

    def wait_states(self, expected: Mapping[str, str], timeout: float = 5.0) -> dict[str, str]:
        """Poll until the named servers have the expected status; LabError after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.server_states()
            if all(states.get(name) == want for name, want in expected.items()):
                return states
            if time.monotonic() > deadline:
                raise LabError(f"haproxy servers {states}, wanted {dict(expected)}")
            time.sleep(_POLL)
