"""A small but real POP3 server (a subset of RFC 1939): the demo's managed service.

    python -m failoverd.demo.pop3 --port P --name N --pidfile F [--user U --password-file PF]

It greets with `+OK <name> ready`, accepts USER/PASS for one configured user,
answers STAT (an empty maildrop) once logged in and QUIT; anything else gets
`-ERR`. It runs in the foreground; `failoverd.demo.service start` detaches it.
The pidfile is written (atomically) only once the port listens, so its
presence means "answering", and removed on SIGTERM/SIGINT.
"""

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MAX_LINE = 512
"""RFC 1939: a response line, and so here a command line, is at most 512 octets."""
IDLE_TIMEOUT = 60.0
"""Seconds of silence before the server closes a connection (the autologout timer)."""


@dataclass(frozen=True, slots=True)
class Account:
    user: str
    password: str


@dataclass(slots=True)
class _Session:
    """One connection's protocol state: AUTHORIZATION until PASS succeeds, then TRANSACTION."""

    name: str
    account: Account | None
    user: str | None = None
    logged_in: bool = False

    def answer(self, line: str) -> tuple[str, bool]:
        """The reply to one command line, and whether to close the connection after it."""
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        if verb == "QUIT":
            return f"+OK {self.name} signing off", True
        if verb == "USER" and not self.logged_in:
            self.user = arg
            return "+OK send PASS", False
        if verb == "PASS" and not self.logged_in and self.user is not None:
            account, user = self.account, self.user
            self.user = None
            if account is not None and (user, arg) == (account.user, account.password):
                self.logged_in = True
                return f"+OK {user}'s maildrop has 0 messages (0 octets)", False
            return "-ERR invalid user or password", False
        if verb == "STAT" and self.logged_in:
            return "+OK 0 0", False
        return f"-ERR {verb or 'empty command'} not allowed here", False


class Pop3Server:
    def __init__(self, name: str, account: Account | None) -> None:
        self.name = name
        self.account = account

    async def serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        session = _Session(self.name, self.account)
        try:
            await self._send(writer, f"+OK {self.name} ready")
            while True:
                try:
                    raw = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT)
                except ValueError:  # longer than the reader's limit
                    await self._send(writer, "-ERR line too long")
                    return
                if not raw.endswith(b"\n"):
                    return  # end of stream, perhaps in the middle of a line
                reply, close = session.answer(raw.decode("utf-8", "replace").rstrip("\r\n"))
                await self._send(writer, reply)
                if close:
                    return
        except (TimeoutError, OSError):
            return  # an idle client, or one that went away
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, line: str) -> None:
        writer.write(line.encode() + b"\r\n")
        await writer.drain()


def write_pidfile(path: Path, pid: int) -> None:
    """Write `pid` to `path` atomically: readers see no file or a complete one."""
    tmp = path.with_name(f".{path.name}.{pid}.tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(path)


def remove_pidfile(path: Path, pid: int) -> None:
    """Remove `path` if it still names `pid` (a newer instance may have replaced it)."""
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text().strip()) == pid:
            path.unlink()


async def serve(host: str, port: int, pidfile: Path, server: Pop3Server) -> None:
    """Listen, publish the pidfile, and serve until SIGTERM or SIGINT."""
    listener = await asyncio.start_server(server.serve_client, host, port, limit=MAX_LINE)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pid = os.getpid()
    write_pidfile(pidfile, pid)
    try:
        async with listener:
            await stop.wait()
    finally:
        remove_pidfile(pidfile, pid)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m failoverd.demo.pop3", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", required=True, help="shown in the greeting")
    parser.add_argument("--pidfile", type=Path, required=True)
    parser.add_argument("--user", help="the one user who may log in")
    parser.add_argument("--password-file", type=Path, help="that user's password")
    args = parser.parse_args(argv)
    if (args.user is None) != (args.password_file is None):
        parser.error("--user and --password-file go together")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM; 1 with a one-line reason if the password or the port is unusable."""
    args = _parse(argv)
    try:
        account = (
            Account(args.user, args.password_file.read_text().strip())
            if args.user is not None
            else None
        )
        asyncio.run(serve(args.host, args.port, args.pidfile, Pop3Server(args.name, account)))
    except OSError as exc:
        print(f"pop3: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
