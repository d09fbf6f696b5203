"""imap: the greeting is `* OK`; with a user, LOGIN succeeds too; then LOGOUT (RFC 3501)."""

import re

from failoverd.checks._stream import LineStream, connect
from failoverd.checks.base import CheckFailed, ProbeCheck, shorten
from failoverd.config.schema import ImapCheck

# Printable ASCII can travel as a quoted string; anything else goes as a literal.
_QUOTABLE = re.compile(r"[\x20-\x7e]*")


async def _tagged_reply(conn: LineStream, tag: str) -> str:
    """The tagged completion line of `tag`, skipping untagged (`* ...`) lines."""
    while True:
        line = await conn.read_line()
        if line.startswith(f"{tag} "):
            return line.removeprefix(f"{tag} ")


async def _send_login(conn: LineStream, tag: str, user: str, password: str) -> None:
    """LOGIN with each argument quoted (\\ and " escaped), or as a literal {n} if not ASCII."""
    line = f"{tag} LOGIN".encode()
    for value in (user, password):
        if _QUOTABLE.fullmatch(value):
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            line += f' "{escaped}"'.encode()
        else:
            data = value.encode()
            await conn.send(line + b" {%d}" % len(data))
            ready = await conn.read_line()
            if not ready.startswith("+"):
                raise CheckFailed(f"LOGIN literal refused: {shorten(ready)!r}")
            line = data
    await conn.send(line)


class ImapProbe(ProbeCheck[ImapCheck]):
    @property
    def label(self) -> str:
        return f"imap {self.spec.host}:{self.spec.port}"

    async def probe(self) -> str:
        login = self.credentials(self.spec.user, self.spec.password_file)
        async with connect(self.spec.host, self.spec.port) as conn:
            greeting = await conn.read_line()
            if not greeting.upper().startswith("* OK"):
                raise CheckFailed(f"greeting is not * OK: {shorten(greeting)!r}")
            if login is None:
                result = "greeting * OK"
            else:
                user, password = login
                await _send_login(conn, "a1", user, password)
                reply = await _tagged_reply(conn, "a1")
                if not reply.upper().startswith("OK"):
                    raise CheckFailed(f"login as {user} refused: {shorten(reply)!r}")
                result = f"logged in as {user}"
            await conn.send("a2 LOGOUT")
            await _tagged_reply(conn, "a2")
        return result
