"""Fixtures of the network-namespace tests: the lab, fault injection, stand-in servers.

Tests marked `root` skip, with the lab's own one-line reason, where the lab
cannot run (not root, no `ip netns`, no iptables statistic match).
"""

import socketserver
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from failoverd.lab.faults import Faults
from failoverd.lab.netns import Host, LabUnavailable, Topology


@pytest.fixture(autouse=True)
def _require_lab(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("root") is None:
        return
    try:
        Topology.require()
    except LabUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """One lab for the whole test module (faults are healed after each test)."""
    try:
        Topology.require()
    except LabUnavailable as e:
        pytest.skip(str(e))
    with Topology(tmp_path_factory.mktemp("lab")) as topology:
        yield topology


@pytest.fixture
def faults(lab: Topology) -> Iterator[Faults]:
    f = Faults(lab)
    yield f
    f.heal_all()


class HealthServer:
    """`GET /health` answering 200 or 503, like a node's failoverd API, inside a host."""

    def __init__(self, host: Host, port: int, healthy: bool) -> None:
        self.healthy = healthy
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                code = 200 if owner.healthy and self.path == "/health" else 503
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        with host.entered():
            self.server = _Quiet((host.addr, port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # haproxy resets its check connections


class FakePop3:
    """A POP3 stand-in for Dovecot: greets with its node's name, accepts any login."""

    def __init__(self, host: Host, port: int) -> None:
        name = host.name

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.wfile.write(f"+OK lab node {name} ready.\r\n".encode())
                for line in self.rfile:
                    self.wfile.write(b"+OK\r\n")
                    if line.upper().startswith(b"QUIT"):
                        return

        with host.entered():
            self.server = _QuietTcp((host.addr, port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietTcp(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[Callable[[Host, int, bool], HealthServer]]:
    servers: list[HealthServer] = []

    def make(host: Host, port: int, healthy: bool) -> HealthServer:
        servers.append(HealthServer(host, port, healthy))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


@pytest.fixture
def fake_pop3() -> Iterator[Callable[[Host, int], FakePop3]]:
    servers: list[FakePop3] = []

    def make(host: Host, port: int) -> FakePop3:
        servers.append(FakePop3(host, port))
        return servers[-1]

    yield make
    for s in servers:
        s.close()
