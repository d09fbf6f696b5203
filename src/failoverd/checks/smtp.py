"""smtp: the greeting is 220, EHLO gets 250, then QUIT (RFC 5321)."""

from failoverd.checks._stream import LineStream, connect
from failoverd.checks.base import CheckFailed, ProbeCheck, shorten
from failoverd.config.schema import SmtpCheck


async def _reply(conn: LineStream) -> tuple[str, str]:
    """(code, first line) of a reply, reading all its `250-...` continuation lines."""
    first = line = await conn.read_line()
    while len(line) > 3 and line[3] == "-":
        line = await conn.read_line()
    return line[:3], first


async def _expect(conn: LineStream, code: str, what: str) -> None:
    got, text = await _reply(conn)
    if got != code:
        raise CheckFailed(f"{what} is not {code}: {shorten(text)!r}")


class SmtpProbe(ProbeCheck[SmtpCheck]):
    @property
    def label(self) -> str:
        return f"smtp {self.spec.host}:{self.spec.port}"

    async def probe(self) -> str:
        async with connect(self.spec.host, self.spec.port) as conn:
            await _expect(conn, "220", "greeting")
            await conn.send(f"EHLO {self.spec.ehlo}")
            await _expect(conn, "250", "reply to EHLO")
            await conn.send("QUIT")
            await _reply(conn)
        return "greeting 220, EHLO 250"
