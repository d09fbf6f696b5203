"""UDP heartbeats and TCP commands, authenticated by `failoverd.wire`.

The transport knows frames and addresses; it hands decoded messages to a
callback and never decides anything. Bad input (forged, replayed, truncated,
oversize, random) is dropped with a rate-limited log line and counted.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from failoverd import wire
from failoverd.core.messages import Message

Addr = tuple[str, int]
Datagram = Callable[[wire.Envelope, Addr], None]
Command = Callable[[wire.Envelope], Awaitable[Message | None]]
Dropped = Callable[[wire.WireError, str], None]


@dataclass(slots=True)
class RateLimitedLog:
    """At most `burst` lines per `period` seconds per key; the rest are counted and summarised."""

    log: logging.Logger
    period: float = 60.0
    burst: int = 5
    _window: dict[str, tuple[float, int]] | None = None

    def warning(self, key: str, text: str) -> None:
        if self._window is None:
            self._window = {}
        now = time.monotonic()
        start, count = self._window.get(key, (now, 0))
        if now - start > self.period:
            if count > self.burst:
                self.log.warning("%d more like the above suppressed (%s)", count - self.burst, key)
            start, count = now, 0
        count += 1
        self._window[key] = (start, count)
        if count <= self.burst:
            self.log.warning("%s", text)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: "Transport") -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.owner.on_datagram(data, (str(addr[0]), int(str(addr[1]))))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the peer's silence tells the same.
        self.owner.log.debug("udp error: %s", exc)


class Transport:
    def __init__(
        self,
        sealer: wire.Sealer,
        opener: wire.Opener,
        log: logging.Logger,
        *,
        on_datagram: Datagram,
        on_command: Command,
        on_dropped: Dropped,
    ) -> None:
        self.sealer = sealer
        self.opener = opener
        self.log = log
        self._on_datagram = on_datagram
        self._on_command = on_command
        self._on_dropped = on_dropped
        self._limited = RateLimitedLog(log)
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int, tcp: bool = True) -> None:
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(host, port), reuse_port=False
        )
        if tcp:
            self._server = await asyncio.start_server(self._serve, host, port, reuse_address=True)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._udp is not None:
            self._udp.close()

    # -- receiving --------------------------------------------------------------

    def _open(self, frame: bytes, source: str) -> wire.Envelope | None:
        try:
            return self.opener.open(frame, time.time())
        except wire.WireError as exc:
            kind = type(exc).__name__
            self._limited.warning(kind, f"dropped frame from {source}: {exc}")
            self._on_dropped(exc, source)
            return None

    def on_datagram(self, data: bytes, addr: Addr) -> None:
        env = self._open(data, f"{addr[0]}:{addr[1]}/udp")
        if env is not None:
            self._on_datagram(env, addr)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        source = f"{peer[0]}:{peer[1]}/tcp" if peer else "?/tcp"
        try:
            frame = await wire.read_frame(reader, timeout=10.0)
            env = self._open(frame, source)
            if env is None:
                return
            reply = await self._on_command(env)
            if reply is not None:
                await wire.write_frame(writer, self.sealer.seal(reply, time.time()))
        except wire.WireError as exc:
            self._limited.warning(type(exc).__name__, f"dropped frame from {source}: {exc}")
            self._on_dropped(exc, source)
        except (TimeoutError, OSError) as exc:
            self.log.info("command connection from %s ended: %s", source, exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    # -- sending ---------------------------------------------------------------

    def send_datagram(self, msg: Message, addr: Addr) -> None:
        if self._udp is None:
            return
        try:
            self._udp.sendto(self.sealer.seal(msg, time.time()), addr)
        except OSError as exc:
            self._limited.warning("send", f"cannot send to {addr[0]}:{addr[1]}: {exc}")

    async def request(self, msg: Message, addrs: list[Addr], timeout: float) -> Message:
        """Send a command over TCP to the first address that accepts it; wait for the reply.

        Raises OSError when no address accepts a connection (the peer is unreachable),
        asyncio.TimeoutError when the reply does not come in time, and WireError
        for a bad reply.
        """
        deadline = time.monotonic() + timeout
        errors: list[str] = []
        for host, port in addrs:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), timeout=min(left, 2.0)
                )
            except (TimeoutError, OSError) as exc:
                errors.append(f"{host}:{port}: {str(exc) or 'connect timed out'}")
                continue
            try:
                await wire.write_frame(writer, self.sealer.seal(msg, time.time()))
                frame = await wire.read_frame(
                    reader, timeout=max(0.01, deadline - time.monotonic())
                )
                return self.opener.open(frame, time.time()).message
            finally:
                writer.close()
        raise OSError("; ".join(errors) or "no address to try")
