"""exec: a shell command exits 0.

The command runs in its own process group (a new session), and the group does
not outlive the run: on timeout or cancellation the whole group gets SIGKILL
and the shell is reaped; after a normal exit, anything it left running in the
background is killed as well (a check must not leak processes).
"""

import asyncio
import os
import signal
from contextlib import suppress

from failoverd.checks.base import CheckFailed, ProbeCheck, shorten
from failoverd.config.schema import ExecCheck

OUTPUT_KEEP = 4096


async def _head(stream: asyncio.StreamReader) -> bytes:
    """Everything up to EOF, keeping the first OUTPUT_KEEP bytes (so the pipe never fills)."""
    kept = b""
    while chunk := await stream.read(65536):
        kept = (kept + chunk)[:OUTPUT_KEEP]
    return kept


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
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            self.spec.command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        assert proc.stdout is not None
        reader = asyncio.ensure_future(_head(proc.stdout))
        try:
            returncode = await proc.wait()
        finally:
            # On timeout: the whole group. After an exit: its leftovers, which would
            # otherwise keep the pipe open.
            _kill_group(proc.pid)
            if proc.returncode is None:
                reader.cancel()
                await proc.wait()
        output = await reader
        line = _first_line(output)
        text = f"{_exit_text(returncode)}: {line}" if line else _exit_text(returncode)
        if returncode != 0:
            raise CheckFailed(text)
        return text
