"""A private Dovecot POP3 (and IMAP) instance in a directory of its own.

Follows /work/shared/recipes/real-components.md: everything (config, passwd-file,
mail, run and state dirs, log, start/stop scripts) lives in `base_dir`, so
several instances run side by side, also in network namespaces. Needs root:
Dovecot's processes switch to the users `dovecot`, `dovenull` and, for mail,
uid 65534 (nobody).

Two ways to run it:
- `start()` / `stop()` / `kill()` from Python (foreground master, our child);
- `start_command()` / `stop_command()`: shell commands for failoverd's startup
  and shutdown scripts (daemon mode). Both are idempotent: starting a running
  instance or stopping a stopped one succeeds, like a service manager.
Either way `pid`, `stop()` and `kill()` find the master through its master.pid.
"""

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

MAIL_UID = 65534  # nobody: Dovecot refuses uid 0 for mail processes
DEFAULT_USERS: Mapping[str, str] = {"alice": "secret"}
POLL = 0.02

# Run inside the namespace by `ip netns exec` to read the banner there.
_PROBE = (
    "import socket, sys\n"
    "s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)\n"
    "sys.exit(0 if s.makefile('rb').readline().startswith(b'+OK') else 1)\n"
)

# Shared by start.sh and stop.sh: is the master of *this* config alive? A dead
# master can stay a zombie (PID 1 of some containers does not reap orphans),
# and Dovecot would then refuse to start ("already running").
_RUNNING_SH = """\
running() {
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    state=$(cut -d')' -f2 "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f2)
    [ -n "$state" ] && [ "$state" != Z ] && tr '\\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$CONF"
}
"""


class DovecotError(Exception):
    """The instance could not be set up, started or stopped."""


def dovecot_available() -> bool:
    """Whether the Dovecot binaries are installed (apt: dovecot-core dovecot-pop3d)."""
    return all(shutil.which(tool) for tool in ("dovecot", "doveadm", "doveconf"))


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs: it exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL)
    return True


class DovecotInstance:
    def __init__(
        self,
        base_dir: Path,
        pop3_port: int,
        imap_port: int | None = None,
        *,
        listen: str = "127.0.0.1",
        users: Mapping[str, str] | None = None,
        netns: str | None = None,
        greeting: str | None = None,
    ) -> None:
        """`greeting` sets Dovecot's login_greeting, e.g. to the node's name so that a
        client sees who answered (default: Dovecot's own)."""
        self.base_dir = base_dir.absolute()
        self.pop3_port = pop3_port
        self.imap_port = imap_port
        self.listen = listen
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.netns = netns
        self.greeting = greeting
        self.conf_path = self.base_dir / "dovecot.conf"
        self.log_path = self.base_dir / "dovecot.log"
        self.pid_file = self.base_dir / "run" / "master.pid"
        self._passwd = self.base_dir / "passwd"
        self._start_sh = self.base_dir / "start.sh"
        self._stop_sh = self.base_dir / "stop.sh"
        self._proc: subprocess.Popen[bytes] | None = None

    # -- set-up --------------------------------------------------------------

    def write_config(self) -> None:
        """Create the directory tree, passwd-file, dovecot.conf and the start/stop scripts."""
        if any(c.isspace() for c in str(self.base_dir)):
            raise DovecotError(f"{self.base_dir}: Dovecot's config needs a path without spaces")
        if self.greeting is not None and (
            not self.greeting.isprintable() or any(c in self.greeting for c in '"\\')
        ):
            raise DovecotError(f"greeting {self.greeting!r}: printable, without quote or \\")
        for user, password in self.users.items():
            if not user or any(c in f"{user}{password}" for c in ":\n\r\0") or "/" in user:
                raise DovecotError(f"user {user!r}: no ':', '/', line breaks or NUL allowed")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.base_dir.chmod(0o755)  # the auth process (user dovecot) reads the passwd-file
        self._check_reachable()
        for sub in ("run", "state"):
            (self.base_dir / sub).mkdir(exist_ok=True)
        lines = []
        for user, password in self.users.items():
            home = self.base_dir / "mail" / user
            for sub in ("new", "cur", "tmp"):
                (home / "Maildir" / sub).mkdir(parents=True, exist_ok=True)
            lines.append(f"{user}:{{PLAIN}}{password}:{MAIL_UID}:{MAIL_UID}::{home}::\n")
        self._chown_mail()
        self._passwd.write_text("".join(lines))
        self.conf_path.write_text(self._config_text())
        self._write_scripts()

    def _check_reachable(self) -> None:
        for parent in self.base_dir.parents:
            if not parent.stat().st_mode & 0o001:
                raise DovecotError(
                    f"{parent} is not searchable by others, so Dovecot's auth process cannot "
                    f"reach {self.base_dir}; use a directory under /tmp (tempfile.mkdtemp())"
                )

    def _chown_mail(self) -> None:
        mail = self.base_dir / "mail"
        os.chown(mail, MAIL_UID, MAIL_UID)
        for root, dirs, files in os.walk(mail):
            for name in dirs + files:
                os.chown(Path(root) / name, MAIL_UID, MAIL_UID)

    def _config_text(self) -> str:
        protocols = "pop3" if self.imap_port is None else "pop3 imap"
        greeting = "" if self.greeting is None else f'login_greeting = "{self.greeting}"\n'
        b = self.base_dir
        text = f"""\
# Written by failoverd.lab.dovecot; nothing from /etc/dovecot is used.
protocols = {protocols}
listen = {self.listen}
base_dir = {b}/run
state_dir = {b}/state
instance_name = failoverd-{b.name}
log_path = {self.log_path}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:~/Maildir
{greeting}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self._passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self._passwd}
}}
{_service("pop3", self.pop3_port)}"""
        if self.imap_port is not None:
            text += _service("imap", self.imap_port)
        return text

    def _write_scripts(self) -> None:
        head = (
            f"#!/bin/sh\n# Written by failoverd.lab.dovecot for {self.base_dir}\n"
            f"CONF={shlex.quote(str(self.conf_path))}\n"
            f"PIDFILE={shlex.quote(str(self.pid_file))}\n{_RUNNING_SH}"
        )
        start = shlex.join([*self._netns_prefix(), "dovecot", "-c", str(self.conf_path)])
        log = shlex.quote(str(self.log_path))
        # The daemon must not inherit the caller's stdout/stderr: a script runner
        # reading them until EOF would wait for as long as Dovecot runs.
        self._start_sh.write_text(
            f"{head}running && exit 0\n"
            f'rm -f "$PIDFILE"  # stale: its master is dead\n'
            f"{start} </dev/null >>{log} 2>&1 && exit 0\n"
            f"rc=$?; tail -n 5 {log} >&2; exit $rc\n"
        )
        self._stop_sh.write_text(f'{head}running || exit 0\ndoveadm -c "$CONF" stop || ! running\n')

    def _netns_prefix(self) -> list[str]:
        return [] if self.netns is None else ["ip", "netns", "exec", self.netns]

    # -- commands for failoverd's scripts ---------------------------------------

    def start_command(self) -> str:
        """Shell command: start this instance in the background (daemon mode); idempotent."""
        return shlex.join(["/bin/sh", str(self._start_sh)])

    def stop_command(self) -> str:
        """Shell command: stop this instance and wait until it is gone; idempotent."""
        return shlex.join(["/bin/sh", str(self._stop_sh)])

    # -- process control ------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The running master's PID (however it was started), or None."""
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) and os.fsencode(self.conf_path) in cmdline else None

    def start(self) -> None:
        """Start the master in the foreground as our child (`dovecot -F`)."""
        if (pid := self.pid) is not None:
            raise DovecotError(f"{self.conf_path}: already running as pid {pid}")
        self.pid_file.unlink(missing_ok=True)  # a stale one (zombie master) blocks the start
        argv = [*self._netns_prefix(), "dovecot", "-F", "-c", str(self.conf_path)]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until the POP3 port answers `+OK`; DovecotError if it does not in time."""
        deadline = time.monotonic() + timeout
        while not self._banner_ok():
            if self._proc is not None and (code := self._proc.poll()) is not None:
                raise DovecotError(f"dovecot exited with status {code}; {self._log_tail()}")
            if time.monotonic() > deadline:
                raise DovecotError(
                    f"no POP3 banner on {self.listen}:{self.pop3_port} within {timeout:g}s; "
                    f"{self._log_tail()}"
                )
            time.sleep(POLL)

    def _banner_ok(self) -> bool:
        if self.netns is not None:
            argv = [*self._netns_prefix(), sys.executable, "-c", _PROBE]
            probe = subprocess.run(
                [*argv, self.listen, str(self.pop3_port)], capture_output=True, check=False
            )
            return probe.returncode == 0
        try:
            with socket.create_connection((self.listen, self.pop3_port), timeout=1) as s:
                return s.makefile("rb").readline().startswith(b"+OK")
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the master, wait up to `timeout`, then SIGKILL its process group."""
        pid = self.pid
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            if not _wait_gone(pid, timeout):
                self.kill()
        self._reap()

    def kill(self) -> None:
        """SIGKILL to the master's whole process group (master and children), like a crash."""
        pid = self.pid
        if pid is not None:
            os.killpg(pid, signal.SIGKILL)
            if not _wait_gone(pid, 5.0):
                raise DovecotError(f"dovecot master {pid} survived SIGKILL")
        self._reap()

    def _reap(self) -> None:
        if self._proc is not None:
            self._proc.wait()
            self._proc = None

    def _log_tail(self, lines: int = 5) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"no log at {self.log_path}"
        return f"log {self.log_path} ends: " + " | ".join(tail)

    def __enter__(self) -> Self:
        self.write_config()
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _service(protocol: str, port: int) -> str:
    return f"""\
service {protocol}-login {{
  inet_listener {protocol} {{
    port = {port}
  }}
  inet_listener {protocol}s {{
    port = 0
  }}
}}
"""
