"""The systemd notify protocol (sd_notify(3)), without a dependency.

A few `KEY=VALUE` lines in one datagram to the AF_UNIX socket named by
NOTIFY_SOCKET. Outside systemd (NOTIFY_SOCKET unset) every method is a no-op.
Sending never raises and never blocks: the socket is non-blocking, and a failed
send is logged once as a warning, then dropped.
"""

import logging
import os
import socket
import time
from collections.abc import MutableMapping

_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class SystemdNotifier:
    """Tells systemd when the daemon is ready, what it is doing, and that it is alive.

    `address` is the socket's path, or its abstract name with a leading "@".
    `watchdog_usec` is WatchdogSec= in microseconds, None when no watchdog is set.
    """

    def __init__(
        self,
        address: str | None,
        watchdog_usec: int | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self._log = log or logging.getLogger(__name__)
        self._address: str | None = None
        if address and address[0] in "/@":
            self._address = "\0" + address[1:] if address[0] == "@" else address
        elif address:
            self._log.warning("NOTIFY_SOCKET=%r is not supported; not notifying systemd", address)
        self._watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_env(
        cls,
        environ: MutableMapping[str, str] | None = None,
        log: logging.Logger | None = None,
    ) -> "SystemdNotifier":
        """From NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID, which it then removes.

        Removing them (as sd_notify's unset_environment does) keeps the scripts the
        daemon runs, and the services they start, from notifying in its name.
        """
        env = os.environ if environ is None else environ
        address, usec, pid = (env.pop(name, None) for name in _ENV)
        watchdog = int(usec) if usec and usec.isdigit() and int(usec) > 0 else None
        if pid is not None and pid != str(os.getpid()):
            watchdog = None  # the watchdog was meant for another process
        return cls(address, watchdog, log)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def watchdog_interval(self) -> float | None:
        """Seconds between two watchdog() calls (half of WatchdogSec=), None without a watchdog."""
        if self._address is None or self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2_000_000

    def ready(self, status: str | None = None) -> None:
        """Startup (or a reload) is complete; systemd's `start` returns now."""
        self._send({"READY": "1"} | self._status(status))

    def status(self, text: str) -> None:
        """One line shown by `systemctl status`."""
        self._send(self._status(text))

    def watchdog(self) -> None:
        """Still alive: call every watchdog_interval() seconds from the event loop."""
        if self._watchdog_usec is not None:
            self._send({"WATCHDOG": "1"})

    def reloading(self, status: str | None = None) -> None:
        """A reload begins; call ready() when it is done (works with Type=notify-reload)."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send({"RELOADING": "1", "MONOTONIC_USEC": str(usec)} | self._status(status))

    def stopping(self, status: str | None = None) -> None:
        self._send({"STOPPING": "1"} | self._status(status))

    @staticmethod
    def _status(text: str | None) -> dict[str, str]:
        return {} if text is None else {"STATUS": " ".join(text.split())}

    def _send(self, fields: dict[str, str]) -> None:
        if self._address is None:
            return
        data = "".join(f"{k}={v}\n" for k, v in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(data, self._address)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                self._log.warning(
                    "cannot notify systemd on %s (%s); further failures are not logged",
                    self._address.replace("\0", "@"),
                    exc,
                )

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
