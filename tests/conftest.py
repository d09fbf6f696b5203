"""Fixtures shared by every test directory."""

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from failoverd.lab.dovecot import DovecotInstance, dovecot_available

# Users of the `dovecot` fixture: bob's password needs IMAP quoting, carol's an IMAP literal.
DOVECOT_USERS = {"alice": "secret", "bob": 'say "hi" \\ bye', "carol": "pässwörd"}


def _free_ports(count: int) -> list[int]:
    """Distinct loopback ports that were free a moment ago (all held until all are chosen)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


@pytest.fixture
def dovecot() -> Iterator[DovecotInstance]:
    """A running Dovecot, POP3 and IMAP on free 127.0.0.1 ports, users DOVECOT_USERS."""
    if os.geteuid() != 0:
        pytest.skip("needs root: Dovecot's processes switch to the users dovecot and nobody")
    if not dovecot_available():
        pytest.skip("Dovecot is not installed (apt: dovecot-core dovecot-pop3d dovecot-imapd)")
    base = Path(tempfile.mkdtemp(prefix="failoverd-dovecot-"))  # /tmp: reachable by dovecot
    try:
        pop3_port, imap_port = _free_ports(2)
        with DovecotInstance(base, pop3_port, imap_port, users=DOVECOT_USERS) as instance:
            yield instance
    finally:
        shutil.rmtree(base, ignore_errors=True)
