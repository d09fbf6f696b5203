"""Start and stop the sample POP3 service: the demo's STARTUP and SHUTDOWN scripts.

    python -m failoverd.demo.service start --port P --name N --pidfile F --log L [--user U ...]
    python -m failoverd.demo.service stop --pidfile F

`start` launches `failoverd.demo.pop3` in a session of its own (so the script
returns at once and the service outlives it, and outlives the daemon that ran
the script), its output into the log file; it returns 0 once the service's
pidfile shows it listening, 1 if it died first. A live instance found through
the pidfile is left alone. `stop` sends SIGTERM to the pid in the pidfile,
waits until the process is gone (SIGKILL after a grace period) and removes the
pidfile; with nothing running it succeeds at once. Both are idempotent, as
failover scripts must be. A pid is only ever signalled after /proc shows it is
the service started with this very pidfile (pids are reused).
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from failoverd.demo.logs import log_tail
from failoverd.demo.waiting import WaitTimeout, wait_for

START_TIMEOUT = 10.0
STOP_GRACE = 3.0
POP3_MODULE = "failoverd.demo.pop3"


class ServiceError(Exception):
    """The service did not start, or would not stop."""


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie has already stopped serving)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def service_pid(pidfile: Path) -> int | None:
    """The pid of the live service that owns `pidfile`, or None."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    argv = _cmdline(pid)
    ours = POP3_MODULE in argv and str(pidfile) in argv
    return pid if ours and _running(pid) else None


def start(argv: Sequence[str], pidfile: Path, log: Path) -> int:
    """Launch the service with `argv` (its options but the pidfile), detached; its pid once it
    listens."""
    pidfile = pidfile.resolve()
    running = service_pid(pidfile)
    if running is not None:
        return running
    pidfile.unlink(missing_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", POP3_MODULE, *argv, "--pidfile", str(pidfile)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def listening() -> bool:
        if proc.poll() is not None:
            why = log_tail(log, 1) or "no output"
            raise ServiceError(f"the service exited with status {proc.returncode}: {why} ({log})")
        return service_pid(pidfile) == proc.pid

    try:
        wait_for(listening, START_TIMEOUT, f"the service to listen (pidfile {pidfile})")
    except WaitTimeout as exc:
        proc.kill()
        raise ServiceError(str(exc)) from exc
    return proc.pid


def stop(pidfile: Path, grace: float = STOP_GRACE) -> int | None:
    """Stop the service that owns `pidfile`; the pid it had, or None if none was running."""
    pidfile = pidfile.resolve()
    pid = service_pid(pidfile)
    if pid is not None:
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            try:
                wait_for(lambda: not _running(pid), wait, f"pid {pid} to exit")
                break
            except WaitTimeout:
                continue
        else:
            raise ServiceError(f"pid {pid} is still running after SIGKILL")
    pidfile.unlink(missing_ok=True)
    return pid


def _parse(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m failoverd.demo.service")
    sub = parser.add_subparsers(dest="action", required=True)
    up = sub.add_parser("start", help="start the service (other options go to the service)")
    up.add_argument("--pidfile", type=Path, required=True)
    up.add_argument("--log", type=Path, required=True, help="the service's output")
    down = sub.add_parser("stop", help="stop the service and wait until it is gone")
    down.add_argument("--pidfile", type=Path, required=True)
    down.add_argument("--grace", type=float, default=STOP_GRACE, help="seconds before SIGKILL")
    return parser.parse_known_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args, rest = _parse(argv)
    if args.action == "stop" and rest:
        print(f"pop3 service: unexpected arguments {rest}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        if args.action == "start":
            pid = start(rest, args.pidfile, args.log)
            print(f"pop3 service listening, pid {pid} ({time.monotonic() - started:.2f}s)")
        else:
            gone = stop(args.pidfile, args.grace)
            print("pop3 service not running" if gone is None else f"pop3 service {gone} stopped")
    except ServiceError as exc:
        print(f"pop3 service: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
