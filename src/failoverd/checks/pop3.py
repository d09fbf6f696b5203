"""pop3: the greeting is +OK; with a user, USER and PASS are accepted too (RFC 1939)."""

from failoverd.checks._stream import LineStream, connect
from failoverd.checks.base import CheckFailed, ProbeCheck, shorten
from failoverd.config.schema import Pop3Check


async def _command(conn: LineStream, line: str) -> str:
    await conn.send(line)
    return await conn.read_line()


def _require_ok(reply: str, failure: str) -> None:
    if not reply.startswith("+OK"):
        raise CheckFailed(f"{failure}: {shorten(reply)!r}")


class Pop3Probe(ProbeCheck[Pop3Check]):
    @property
    def label(self) -> str:
        return f"pop3 {self.spec.host}:{self.spec.port}"

    async def probe(self) -> str:
        login = self.credentials(self.spec.user, self.spec.password_file)
        async with connect(self.spec.host, self.spec.port) as conn:
            _require_ok(await conn.read_line(), "greeting is not +OK")
            if login is None:
                result = "greeting +OK"
            else:
                user, password = login
                _require_ok(await _command(conn, f"USER {user}"), f"USER {user} refused")
                _require_ok(await _command(conn, f"PASS {password}"), f"login as {user} refused")
                result = f"logged in as {user}"
            await _command(conn, "QUIT")
        return result
