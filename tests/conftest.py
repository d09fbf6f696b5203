"""Fixtures shared by every test directory."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from failoverd.demo.ports import free_ports
from failoverd.lab.dovecot import DovecotInstance, dovecot_available

# Users of the `dovecot` fixture: bob's password needs IMAP quoting, carol's an IMAP literal.
DOVECOT_USERS = {"alice": "secret", "bob": 'say "hi" \\ bye', "carol": "pässwörd"}


@pytest.fixture
def dovecot() -> Iterator[DovecotInstance]:
    """A running Dovecot, POP3 and IMAP on free 127.0.0.1 ports, users DOVECOT_USERS."""
    if os.geteuid() != 0:
        pytest.skip("needs root: Dovecot's processes switch to the users dovecot and nobody")
    if not dovecot_available():
        pytest.skip("Dovecot is not installed (apt: dovecot-core dovecot-pop3d dovecot-imapd)")
    base = Path(tempfile.mkdtemp(prefix="failoverd-dovecot-"))  # /tmp: reachable by dovecot
    try:
        pop3_port, imap_port = free_ports(2)
        with DovecotInstance(base, pop3_port, imap_port, users=DOVECOT_USERS) as instance:
            yield instance
    finally:
        shutil.rmtree(base, ignore_errors=True)
