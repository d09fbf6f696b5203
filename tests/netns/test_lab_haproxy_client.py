"""HAProxy in `lb` follows the nodes' /health; the client in `client` records who answered."""

import itertools
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from failoverd.lab.client import ClientLog, Pop3Client
from failoverd.lab.haproxy import HAProxy
from failoverd.lab.netns import Host, Topology

from .conftest import FakePop3, HealthServer

pytestmark = pytest.mark.root

NODES = ("primary", "standby")


@pytest.fixture
def haproxy(lab: Topology, tmp_path: Path) -> Iterator[HAProxy]:
    h = HAProxy.for_nodes(lab.lb, [lab.primary, lab.standby], tmp_path)
    h.start()
    yield h
    h.stop()


@pytest.fixture
def client(lab: Topology, haproxy: HAProxy, tmp_path: Path) -> Iterator[Pop3Client]:
    c = Pop3Client(
        lab.client, haproxy.address, tmp_path / "client.jsonl", nodes=NODES, max_seconds=30
    )
    yield c
    c.stop()


@pytest.fixture
def nodes(
    lab: Topology,
    health_server: Callable[[Host, int, bool], HealthServer],
    fake_pop3: Callable[[Host, int], FakePop3],
) -> dict[str, HealthServer]:
    """Both nodes serving POP3 on 110 and /health on 8790, both unhealthy at first."""
    health = {}
    for host in (lab.primary, lab.standby):
        fake_pop3(host, 110)
        health[host.name] = health_server(host, 8790, False)
    return health


def test_haproxy_routes_to_whichever_node_is_healthy(
    haproxy: HAProxy, client: Pop3Client, nodes: dict[str, HealthServer]
) -> None:
    nodes["primary"].healthy = True
    assert haproxy.wait_states({"primary": "UP", "standby": "DOWN"})["BACKEND"] == "UP"
    client.start()
    log = client.wait_for(lambda log: len(log.ok) >= 5, 10)
    assert set(log.answers_by_node()) == {"primary"}

    flip = time.monotonic()
    nodes["primary"].healthy, nodes["standby"].healthy = False, True
    haproxy.wait_states({"primary": "DOWN", "standby": "UP"})
    settled = time.monotonic()
    log = client.wait_for(lambda log: len(log.between(settled).ok) >= 5, 10)
    after = log.between(settled)
    assert set(after.answers_by_node()) == {"standby"}
    assert after.failed == []
    answered = log.first_answer(flip, "standby")
    assert answered is not None
    assert log.time_to_answer(flip, "standby") == pytest.approx(answered.end - flip)
    assert log.last_answer("primary") is not None
    assert after.interleavings(within=1.0) == []


def test_client_records_errors_while_no_node_is_healthy(
    haproxy: HAProxy, client: Pop3Client, nodes: dict[str, HealthServer]
) -> None:
    haproxy.wait_states({"primary": "DOWN", "standby": "DOWN"})
    client.start()
    client.wait_for(lambda log: len(log.failed) >= 3, 10)
    healed = time.monotonic()
    nodes["standby"].healthy = True
    log = client.wait_for(lambda log: log.first_answer(healed, "standby") is not None, 10)
    first_error = log.error_periods()[0]
    assert first_error.count >= 3
    assert all(error for error in first_error.errors)
    assert first_error.end <= log.ok[0].start
    assert log.attempts[0].ok is False and log.attempts[0].node is None


def test_client_stops_by_itself_after_max_attempts(
    lab: Topology, haproxy: HAProxy, nodes: dict[str, HealthServer], tmp_path: Path
) -> None:
    nodes["primary"].healthy = True
    haproxy.wait_states({"primary": "UP"})
    c = Pop3Client(
        lab.client, haproxy.address, tmp_path / "bounded.jsonl", nodes=NODES, max_attempts=4
    )
    c.start()
    assert c.process is not None
    assert c.process.wait(10) == 0
    log = ClientLog.load(c.out)
    assert [a.seq for a in log] == [0, 1, 2, 3]
    assert all(a.ok and a.node == "primary" for a in log)
    assert all(b.start - a.start >= 0.049 for a, b in itertools.pairwise(log.attempts))


def test_real_dovecot_pair_behind_haproxy(
    lab: Topology,
    health_server: Callable[[Host, int, bool], HealthServer],
    haproxy: HAProxy,
    client: Pop3Client,
) -> None:
    dovecot = pytest.importorskip("failoverd.lab.dovecot")
    if not dovecot.dovecot_available():
        pytest.skip("Dovecot is not installed (apt-get install dovecot-core dovecot-pop3d)")
    base = Path(tempfile.mkdtemp(prefix="lab-dovecot-"))
    base.chmod(0o755)  # Dovecot's auth and mail users must reach the instance dirs
    health = {h.name: health_server(h, 8790, h is lab.primary) for h in (lab.primary, lab.standby)}
    instances = {
        h.name: dovecot.DovecotInstance(base / h.name, 110, listen=h.addr, netns=h.ns)
        for h in (lab.primary, lab.standby)
    }

    def logins(node: str) -> int:
        return instances[node].log_path.read_text().count("Login: user=<alice>")

    try:
        for instance in instances.values():
            instance.write_config()
            instance.start()
        for instance in instances.values():
            instance.wait_ready()
        haproxy.wait_states({"primary": "UP", "standby": "DOWN"})
        client.start()
        client.wait_for(lambda log: len(log.ok) >= 3, 10)
        assert logins("primary") >= 3
        assert logins("standby") == 0
        health["primary"].healthy, health["standby"].healthy = False, True
        haproxy.wait_states({"primary": "DOWN", "standby": "UP"})
        settled = time.monotonic()
        log = client.wait_for(lambda log: len(log.between(settled).ok) >= 3, 10)
        assert logins("standby") >= 3
        assert log.between(settled).failed == []
    finally:
        for instance in instances.values():
            instance.kill()
        shutil.rmtree(base, ignore_errors=True)
