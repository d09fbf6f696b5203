"""A link that a test can cut: a UDP and TCP relay on loopback.

The daemons are configured to reach each other (and the witness) through
relays instead of directly, so a test can cut any directed path while every
address stays 127.0.0.1. A cut relay drops datagrams and refuses or stalls
TCP connections, as a pulled cable would look from both ends.
"""

import asyncio
import contextlib
import threading
from collections.abc import Iterator

LOOPBACK = "127.0.0.1"


class _Upstream(asyncio.DatagramProtocol):
    """The relay's socket towards the target for one client: replies go back to that client."""

    def __init__(self, relay: "Relay", client: tuple[str, int]) -> None:
        self.relay = relay
        self.client = client

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if not self.relay.cut and self.relay.front is not None:
            self.relay.front.sendto(data, self.client)


class _Front(asyncio.DatagramProtocol):
    def __init__(self, relay: "Relay") -> None:
        self.relay = relay

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        client = (str(addr[0]), int(str(addr[1])))
        if not self.relay.cut:
            task = asyncio.ensure_future(self.relay.forward(data, client))
            self.relay.pending.add(task)
            task.add_done_callback(self.relay.pending.discard)


class Relay:
    """Listens on `port` (UDP and TCP) and forwards to `target`, both ways, unless cut."""

    def __init__(self, loop: asyncio.AbstractEventLoop, port: int, target: int) -> None:
        self.loop = loop
        self.port = port
        self.target = target
        self.cut = False
        self.front: asyncio.DatagramTransport | None = None
        self._upstreams: dict[tuple[str, int], asyncio.DatagramTransport] = {}
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self.pending: set[asyncio.Future[None]] = set()

    async def start(self) -> None:
        self.front, _ = await self.loop.create_datagram_endpoint(
            lambda: _Front(self), local_addr=(LOOPBACK, self.port)
        )
        self._server = await asyncio.start_server(self._tcp, LOOPBACK, self.port)

    async def forward(self, data: bytes, client: tuple[str, int]) -> None:
        upstream = self._upstreams.get(client)
        if upstream is None:
            upstream, _ = await self.loop.create_datagram_endpoint(
                lambda: _Upstream(self, client), remote_addr=(LOOPBACK, self.target)
            )
            self._upstreams[client] = upstream
        upstream.sendto(data)

    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            writer.close()  # a cut link: the command never gets through
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(LOOPBACK, self.target)
        except OSError:
            writer.close()
            return
        self._conns.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while not self.cut and (chunk := await src.read(65536)):
                    dst.write(chunk)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def set_cut(self, cut: bool) -> None:
        self.cut = cut
        if cut:
            for conn in list(self._conns):
                conn.close()
            self._conns.clear()

    async def stop(self) -> None:
        self.set_cut(True)
        if self._server is not None:
            self._server.close()
        for transport in [self.front, *self._upstreams.values()]:
            if transport is not None:
                transport.close()


class Relays:
    """Named relays running on a private event loop in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.links: dict[str, Relay] = {}

    def add(self, name: str, port: int, target: int) -> None:
        relay = Relay(self.loop, port, target)
        asyncio.run_coroutine_threadsafe(relay.start(), self.loop).result(5)
        self.links[name] = relay

    def cut(self, *names: str, cut: bool = True) -> None:
        for name in names:
            self.loop.call_soon_threadsafe(self.links[name].set_cut, cut)

    def close(self) -> None:
        for relay in self.links.values():
            asyncio.run_coroutine_threadsafe(relay.stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


@contextlib.contextmanager
def relays() -> Iterator[Relays]:
    r = Relays()
    try:
        yield r
    finally:
        r.close()
