"""A line-oriented TCP conversation, shared by the pop3, imap and smtp checks."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from failoverd.checks.base import CheckFailed

LINE_LIMIT = 8192


class LineStream:
    """Reads CRLF-terminated reply lines and sends command lines."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read_line(self) -> str:
        """The next line without its line ending; CheckFailed when the server hangs up."""
        try:
            raw = await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            raise CheckFailed("connection closed by the server") from None
        except asyncio.LimitOverrunError:
            raise CheckFailed(f"reply line longer than {LINE_LIMIT} bytes") from None
        return raw.decode("utf-8", errors="replace").rstrip("\r\n")

    async def send(self, line: str | bytes) -> None:
        """Send one line; CRLF is added."""
        data = line.encode() if isinstance(line, str) else line
        self._writer.write(data + b"\r\n")
        await self._writer.drain()


@asynccontextmanager
async def connect(host: str, port: int) -> AsyncIterator[LineStream]:
    """A LineStream to host:port; closed politely on success, aborted on any error."""
    reader, writer = await asyncio.open_connection(host, port, limit=LINE_LIMIT)
    try:
        yield LineStream(reader, writer)
    except BaseException:
        writer.transport.abort()
        raise
    writer.close()
    with suppress(OSError):
        await writer.wait_closed()
