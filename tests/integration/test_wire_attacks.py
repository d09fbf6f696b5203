"""Forged, replayed and stale SHUTDOWN_YOUR_SERVICE sent to a live primary's peer port.

Only the primary runs (it becomes active on its own after init_dead), so that
the test is the only one speaking as the standby: its frames cannot disturb
a real standby's replay window, and whatever the primary does is their doing.
"""

import asyncio
import os
import socket
import time

from failoverd import wire
from failoverd.config.load import read_secret_file
from failoverd.core.messages import ShutdownReply, ShutdownRequest
from failoverd.core.types import ShutdownOutcome
from failoverd.demo.cluster import Cluster, Node
from failoverd.demo.ports import LOOPBACK
from failoverd.demo.waiting import wait_for
from tests.integration.conftest import TIMEOUT, MakeCluster, records

KEY_ID = 1  # the schema's default cluster.key_id


async def _exchange(port: int, frame: bytes) -> bytes | None:
    """Send one frame to the peer port; the reply frame, or None if closed without one."""
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        await wire.write_frame(writer, frame)
        writer.write_eof()  # a truncated frame ends here, not at the daemon's read timeout
        try:
            return await wire.read_frame(reader, timeout=TIMEOUT)
        except wire.ConnectionClosed:
            return None
    finally:
        writer.close()


def send(node: Node, frame: bytes) -> bytes | None:
    return asyncio.run(_exchange(node.plan.peer_port, frame))


def shutdown_request(sender: str, target_epoch: int, reason: str) -> ShutdownRequest:
    return ShutdownRequest(
        request_id=f"test-{reason}",
        sender=sender,
        target_epoch=target_epoch,
        reason=reason,
        planned=False,
    )


def assert_still_serving(cluster: Cluster) -> None:
    primary = cluster.primary
    assert primary.daemon.alive
    assert primary.state() == "active"
    assert primary.pop3() == f"+OK {primary.name} ready"
    journal = primary.journal()
    assert not [r for r in journal if r["to"] == "releasing"]
    assert not records(journal, "command", "sent SHUTDOWN_YOUR_SERVICE")


def test_forged_replayed_and_stale_shutdown_are_rejected(make_cluster: MakeCluster) -> None:
    cluster = make_cluster()
    primary, peer = cluster.primary, cluster.standby.name
    primary.daemon.start()
    primary.wait_state("active", TIMEOUT)
    primary.wait_serving(TIMEOUT)
    epoch = primary.status()["node"]["epoch"]  # type: ignore[index]
    secret = read_secret_file(cluster.secret_file)
    sealer = wire.Sealer(wire.Keyring((KEY_ID, secret)), peer, boot=1)
    opener = wire.Opener(wire.Keyring((KEY_ID, secret)), {primary.name}, command_window=30)

    # Forged: a request the primary would obey, signed with another key.
    forger = wire.Sealer(wire.Keyring((KEY_ID, os.urandom(32))), peer, boot=1)
    assert send(primary, forger.seal(shutdown_request(peer, epoch, "forged"), time.time())) is None

    # Garbage of every kind, over TCP and UDP.
    genuine = sealer.seal(shutdown_request(peer, epoch, "never sent whole"), time.time())
    for junk in (os.urandom(200), genuine[:-5], genuine[:-1] + bytes([genuine[-1] ^ 1])):
        assert send(primary, junk) is None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(junk, (LOOPBACK, primary.plan.peer_port))

    # Authentic and harmless (it names an older epoch): answered once, then refused as a replay.
    harmless = sealer.seal(shutdown_request(peer, epoch - 1, "stale epoch"), time.time())
    reply = send(primary, harmless)
    assert reply is not None
    answer = opener.open(reply, time.time()).message
    assert isinstance(answer, ShutdownReply)
    assert answer.outcome is ShutdownOutcome.REFUSED
    assert f"stale: I am active at epoch {epoch}" in answer.detail
    assert send(primary, harmless) is None
    assert len(records(primary.journal(), "command", f"SHUTDOWN_YOUR_SERVICE from {peer}")) == 1

    # Recorded long ago, never delivered: a request it would obey, but outside the command
    # window (sealed with the time it would carry had it been captured 60s ago).
    old = sealer.seal(shutdown_request(peer, epoch, "old capture"), time.time() - 60)
    assert send(primary, old) is None

    wait_for(lambda: "command window" in primary.log_text(), TIMEOUT, "the stale frame's log")
    log = primary.log_text()
    for reason in ("bad signature", "bad magic", "connection closed after", "already seen"):
        assert reason in log, reason
    assert_still_serving(cluster)
