"""The POP3 client loop of the lab's `client` host.

`python -m failoverd.lab.client_probe --connect ADDR:PORT --out FILE ...`,
started inside the namespace by `failoverd.lab.client.Pop3Client`. Every
`interval` it opens a new connection, reads the banner, logs in and quits,
and appends one JSON line per attempt to FILE (see `client.Attempt`). It
stops by itself after `--max-attempts` or `--max-seconds`, whichever first.
"""

import argparse
import json
import os
import poplib
import re
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any


def node_in_banner(banner: str, nodes: Sequence[str]) -> str | None:
    """The first of `nodes` that appears as a word in the banner (Dovecot's login_greeting)."""
    for node in nodes:
        if re.search(rf"(?<![\w-]){re.escape(node)}(?![\w-])", banner):
            return node
    return None


def _error_text(e: BaseException) -> str:
    detail = e.args[0] if len(e.args) == 1 else e
    if isinstance(detail, bytes):
        detail = detail.decode(errors="replace")
    return f"{type(e).__name__}: {detail}"


def attempt(
    host: str, port: int, *, user: str, password: str, timeout: float, nodes: Sequence[str]
) -> dict[str, Any]:
    """One login on a new connection: its outcome as a JSON-able record."""
    start, wall = time.monotonic(), time.time()
    banner: str | None = None
    error: str | None = None
    try:
        pop = poplib.POP3(host, port, timeout=timeout)
        try:
            banner = pop.getwelcome().decode(errors="replace")
            pop.user(user)
            pop.pass_(password)
            pop.quit()
        finally:
            pop.close()  # a second close (after quit) does nothing
    except (OSError, poplib.error_proto, EOFError) as e:
        error = _error_text(e)
    return {
        "start": start,
        "wall": wall,
        "elapsed": time.monotonic() - start,
        "ok": error is None,
        "node": None if banner is None else node_in_banner(banner, nodes),
        "error": error,
        "banner": banner,
    }


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="failoverd.lab.client_probe")
    parser.add_argument("--connect", required=True, help="HOST:PORT of the load balancer")
    parser.add_argument("--out", required=True, type=Path, help="JSON lines, appended")
    parser.add_argument("--user", default="alice")
    parser.add_argument("--password-file", required=True, type=Path)
    parser.add_argument("--node", action="append", default=[], help="a node name to look for")
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--max-attempts", type=int, required=True)
    parser.add_argument("--max-seconds", type=float, required=True)
    args = parser.parse_args(argv)
    host, _, port = args.connect.rpartition(":")
    password = args.password_file.read_text().strip()
    signal.signal(signal.SIGTERM, _stop)
    deadline = time.monotonic() + args.max_seconds
    fd = os.open(args.out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        for seq in range(args.max_attempts):
            if time.monotonic() >= deadline:
                break
            record = attempt(
                host,
                int(port),
                user=args.user,
                password=password,
                timeout=args.timeout,
                nodes=args.node,
            )
            line = json.dumps({"seq": seq, **record}) + "\n"
            os.write(fd, line.encode())  # one write per line: readers never see half a record
            pause = record["start"] + args.interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    finally:
        os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
