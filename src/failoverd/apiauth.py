"""Authentication of the HTTP API's control requests with the cluster secret.

A control request (maintenance, switchover, failback) carries the header

    X-Failoverd-Auth: <unix_ts>:<hex HMAC-SHA256(secret, f"{ts}\\n{METHOD}\\n{path}\\n" + body)>

where `path` is the URL path without its query string. The signature binds
the method, the path and the whole body, so a captured header cannot be put
on another operation.

This is separate from the peer protocol (`failoverd.wire`) on purpose: the
API's clients are one-shot CLI runs with no boot id or counter to keep, so a
timestamp window replaces the wire's per-sender replay windows.

Replay: a header is accepted within `window` seconds either side of its
timestamp (the operator's host and the node may disagree on the time a
little). Inside that window whoever captured a request could send it again.
`maintenance on/off` and `failback` are idempotent, so a replay changes
nothing; a switchover is not (a replay would move the service back), so the
API also remembers the signatures it accepted until they expire
(`SeenSignatures`) and refuses them a second time, and the CLI puts a random
nonce into each body so that two identical commands within a second differ.
That memory does not survive a daemon restart: a request captured less than
`window` seconds before a restart can be replayed once after it.
"""

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping

from failoverd.core.events import Operation

HEADER = "X-Failoverd-Auth"
CONTROL_PATHS: Mapping[str, Operation] = {
    "/maintenance/on": Operation.MAINTENANCE_ON,
    "/maintenance/off": Operation.MAINTENANCE_OFF,
    "/switchover": Operation.SWITCHOVER,
    "/failback": Operation.FAILBACK,
}
"""The API's control endpoints (POST), the requests that must carry HEADER."""
DEFAULT_WINDOW = 30.0
"""Seconds a signed request stays valid either side of its timestamp."""

_HEADER_VALUE = re.compile(r"([0-9]{1,12}):([0-9a-fA-F]{64})")


def _mac(secret: bytes, ts: int, method: str, path: str, body: bytes) -> str:
    message = f"{ts}\n{method.upper()}\n{path}\n".encode() + body
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign(secret: bytes, method: str, path: str, body: bytes, now: float) -> str:
    """The X-Failoverd-Auth value for a request sent at `now` (unix time)."""
    ts = int(now)
    return f"{ts}:{_mac(secret, ts, method, path, body)}"


def parse_header(header: str | None) -> tuple[int, str] | None:
    """(timestamp, lower-case hex MAC) of a well-formed header value, else None."""
    if header is None:
        return None
    m = _HEADER_VALUE.fullmatch(header.strip())
    if m is None:
        return None
    return int(m.group(1)), m.group(2).lower()


def verify(
    keys: bytes | Iterable[bytes],
    method: str,
    path: str,
    body: bytes,
    header: str | None,
    *,
    now: float,
    window: float = DEFAULT_WINDOW,
) -> bool:
    """Whether `header` signs this request with one of `keys` within `window` of `now`.

    `keys` is the current secret or a keyring (the current key and those still
    accepted during a rotation). Never raises: a missing or malformed header
    is simply not valid.
    """
    parsed = parse_header(header)
    if parsed is None:
        return False
    ts, mac = parsed
    if abs(now - ts) > window:
        return False
    keyring = [keys] if isinstance(keys, bytes) else list(keys)
    valid = False
    for key in keyring:  # no early exit: the time taken does not tell which key matched
        valid |= hmac.compare_digest(_mac(key, ts, method, path, body), mac)
    return valid


class SeenSignatures:
    """The signatures of accepted requests, kept until their window ends, to refuse replays.

    Only requests that passed `verify` are added, so without the secret nobody
    can fill it; `max_entries` bounds it all the same (the oldest go first).
    Not thread-safe: the API uses it from its own event loop only.
    """

    def __init__(self, window: float = DEFAULT_WINDOW, max_entries: int = 4096) -> None:
        self.window = window
        self.max_entries = max_entries
        self._expiry: dict[str, float] = {}

    def first_use(self, header: str, now: float) -> bool:
        """Record a verified header; False if it was accepted before (a replay)."""
        parsed = parse_header(header)
        if parsed is None:
            return False
        ts, mac = parsed
        self._expiry = {m: t for m, t in self._expiry.items() if t >= now}
        if mac in self._expiry:
            return False
        while len(self._expiry) >= self.max_entries:
            del self._expiry[next(iter(self._expiry))]
        self._expiry[mac] = ts + self.window
        return True
