"""What every health check shares: the outcome record, the protocol, the error mapping.

A check's `run()` never raises: a timeout, a refused connection, a bad reply or
a bug in the probe all become `CheckOutcome(ok=False, detail=...)`, so that the
runner and the core only ever see outcomes. Passwords never reach a detail or
the log: every password a check has read is masked in its details.
"""

import asyncio
import logging
import os
import socket
import ssl
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from failoverd.config.schema import CheckBase

logger = logging.getLogger(__name__)

DETAIL_LIMIT = 200
MASK = "***"


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """One run's result: pass or fail, a short plain sentence, and how long it took (s)."""

    ok: bool
    detail: str
    latency: float


class Check(Protocol):
    """A configured health check, ready to run again and again."""

    @property
    def name(self) -> str: ...

    @property
    def spec(self) -> CheckBase: ...

    async def run(self) -> CheckOutcome:
        """Probe once within the spec's timeout; never raises (except cancellation)."""
        ...

    async def close(self) -> None:
        """Release what the check keeps between runs (e.g. an HTTP session)."""
        ...


class CheckFailed(Exception):
    """The probe found the service unhealthy; the message is the detail sentence."""


def shorten(text: str, limit: int = 80) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe_error(exc: BaseException) -> str:
    """A short sentence for an exception that escaped a probe."""
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host: {exc.strerror}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed by the server"
    if isinstance(exc, OSError) and exc.errno is not None and exc.errno > 0:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


def read_password(path: Path) -> str:
    """The password in `path`, without one trailing newline (read at each run)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8"
        raise CheckFailed(f"cannot read password file {path}: {reason}") from None
    if text.endswith("\n"):
        text = text[:-1]
        text = text.removesuffix("\r")
    return text


S = TypeVar("S", bound=CheckBase)


class ProbeCheck(ABC, Generic[S]):
    """Base of the concrete checks: subclasses write `probe()`, this class makes it safe."""

    def __init__(self, spec: S) -> None:
        self._spec = spec
        self._secrets: set[str] = set()

    @property
    def name(self) -> str:
        return self._spec.name

    @property
    def spec(self) -> S:
        return self._spec

    @property
    @abstractmethod
    def label(self) -> str:
        """What is probed, as details start: "pop3 127.0.0.1:110"."""

    @abstractmethod
    async def probe(self) -> str:
        """Probe once; return the success detail, raise CheckFailed (or anything) on failure."""

    async def close(self) -> None:
        """Nothing kept between runs by default."""

    def credentials(self, user: str | None, password_file: Path | None) -> tuple[str, str] | None:
        """(user, password) when the spec asks for a login, read fresh from the file."""
        if user is None or password_file is None:
            return None
        password = read_password(password_file)
        if password:
            self._secrets.add(password)
        if any(c in value for value in (user, password) for c in "\r\n\0"):
            raise CheckFailed("user or password contains a line break or NUL; not sent")
        return user, password

    async def run(self) -> CheckOutcome:
        timeout = self._spec.timeout
        start = time.monotonic()
        deadline = asyncio.timeout(timeout)
        ok = False
        try:
            async with deadline:
                text = await self.probe()
            ok = True
        except CheckFailed as e:
            text = str(e)
        except TimeoutError as e:
            text = f"no answer within {timeout:g}s" if deadline.expired() else describe_error(e)
        except Exception as e:
            text = describe_error(e)
            if not isinstance(e, OSError | asyncio.IncompleteReadError):
                logger.warning("check %s: unexpected %s", self.name, type(e).__name__)
        latency = time.monotonic() - start
        return CheckOutcome(ok, self._mask(f"{self.label}: {text}"), latency)

    def _mask(self, detail: str) -> str:
        for secret in self._secrets:
            detail = detail.replace(secret, MASK)
        return shorten(detail, DETAIL_LIMIT)
