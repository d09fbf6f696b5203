"""exec: a shell command exits 0.

The command runs in its own process group (a new session), and the group does
not outlive the run: on timeout or cancellation the whole group gets SIGKILL
and the shell is reaped; after a normal exit, anything it left running in the
background is killed as well (a check must not leak processes).

A SubprocessProtocol rather than `Process.wait()`: in Python 3.11 that waits
for the output pipe to close too, which a background child can hold open.
"""

import asyncio
import os
import signal
import subprocess
from contextlib import suppress
from typing import cast

from failoverd.checks.base import CheckFailed, ProbeCheck, shorten
from failoverd.config.schema import ExecCheck

OUTPUT_KEEP = 4096
# After the group is killed the pipe reaches EOF at once, unless a process that
# left the group (setsid) holds it; never wait longer than this for it.
EOF_GRACE = 1.0


class _Collector(asyncio.SubprocessProtocol):
    """Keeps the first OUTPUT_KEEP bytes of output; resolves `exited` and `finished`."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.head = b""
        self.exited: asyncio.Future[int] = loop.create_future()
        self.finished: asyncio.Future[None] = loop.create_future()
        self._transport: asyncio.SubprocessTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.SubprocessTransport, transport)

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        if isinstance(data, bytes) and len(self.head) < OUTPUT_KEEP:
            self.head = (self.head + data)[:OUTPUT_KEEP]

    def process_exited(self) -> None:
        assert self._transport is not None
        returncode = self._transport.get_returncode()
        if returncode is not None and not self.exited.done():
            self.exited.set_result(returncode)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.finished.set_result(None)


def _kill_group(pgid: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _first_line(output: bytes) -> str:
    lines = output.decode("utf-8", errors="replace").strip().splitlines()
    return shorten(lines[0].strip(), 120) if lines else ""


def _exit_text(returncode: int) -> str:
    if returncode >= 0:
        return f"exit {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


class ExecProbe(ProbeCheck[ExecCheck]):
    @property
    def label(self) -> str:
        return f"exec {shorten(self.spec.command, 60)!r}"

    async def probe(self) -> str:
        loop = asyncio.get_running_loop()
        transport, proc = await loop.subprocess_exec(
            lambda: _Collector(loop),
            "/bin/sh",
            "-c",
            self.spec.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            returncode = await asyncio.shield(proc.exited)  # stays awaitable after a cancel
        finally:
            # On timeout: the whole group. After an exit: its leftovers.
            _kill_group(transport.get_pid())
            try:
                await proc.exited
                await asyncio.wait([proc.finished], timeout=EOF_GRACE)
            finally:
                transport.close()
        line = _first_line(proc.head)
        text = f"{_exit_text(returncode)}: {line}" if line else _exit_text(returncode)
        if returncode != 0:
            raise CheckFailed(text)
        return text
