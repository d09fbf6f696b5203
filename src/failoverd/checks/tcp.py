"""tcp: the port accepts a connection."""

from failoverd.checks._stream import connect
from failoverd.checks.base import ProbeCheck
from failoverd.config.schema import TcpCheck


class TcpProbe(ProbeCheck[TcpCheck]):
    @property
    def label(self) -> str:
        return f"tcp {self.spec.host}:{self.spec.port}"

    async def probe(self) -> str:
        async with connect(self.spec.host, self.spec.port):
            return "connected"
