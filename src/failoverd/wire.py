"""Encoding, authentication and replay protection of the messages nodes exchange.

A frame is::

    header   magic b"FOD1" | version u8 | key id u16 | body length u32   (big-endian)
    body     compact JSON: {"type", "sender", "boot", "counter", "sent", "msg"}
    mac      HMAC-SHA256 over header + body, keyed with the secret of the key id

and is at most MAX_FRAME bytes, over UDP (heartbeats, acks) and TCP (commands).

`Sealer` builds frames; `Opener` checks them in an order that does no work for
an attacker without the key: size, header, key id, MAC, and only then JSON,
strict validation of every field, sender, replay window and, for commands,
the time window. Anything wrong raises a `WireError` whose `str()` is one short
log line. Replay state is only updated for a frame that passed every check.
"""

import asyncio
import dataclasses
import hmac
import json
import math
import struct
import types
from collections.abc import Callable, Collection, Mapping
from enum import StrEnum
from typing import Any, NoReturn, get_args, get_origin, get_type_hints

from failoverd.core.messages import (
    Ack,
    Heartbeat,
    Message,
    ShutdownReply,
    ShutdownRequest,
    TakeoverReply,
    TakeoverRequest,
)
from failoverd.replay import ReplayWindow

MAGIC = b"FOD1"
VERSION = 1
MAX_FRAME = 8192
MIN_SECRET = 32
MAC_SIZE = 32
_HEADER = struct.Struct(">4sBHI")
HEADER_SIZE = _HEADER.size
_MAX_KEY_ID = 0xFFFF
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_PREVIEW = 60

COMMANDS: frozenset[type[Message]] = frozenset(
    {ShutdownRequest, ShutdownReply, TakeoverRequest, TakeoverReply}
)
"""Message types that must also be fresh by wall clock (see `Opener`)."""

# The field of each message that names its sender; it must match the frame's sender.
_SENDER_FIELD: dict[type[Message], str] = {
    Heartbeat: "sender",
    Ack: "voter",
    ShutdownRequest: "sender",
    ShutdownReply: "sender",
    TakeoverRequest: "sender",
    TakeoverReply: "sender",
}


class WireError(Exception):
    """An incoming frame was refused; `str()` is a short line for the log."""


class Truncated(WireError):
    pass


class ConnectionClosed(Truncated):
    """The TCP peer closed the connection cleanly, before the first byte of a frame."""


class Oversize(WireError):
    pass


class BadMagic(WireError):
    pass


class BadVersion(WireError):
    pass


class UnknownKey(WireError):
    pass


class BadSignature(WireError):
    pass


class Malformed(WireError):
    """Authentic frame whose content is not a valid message."""


class UnknownSender(WireError):
    pass


class Replayed(WireError):
    pass


class Stale(WireError):
    """A command whose sender's wall clock is too far from ours."""


class ReadTimeout(WireError):
    """No complete frame arrived on a TCP stream in time."""


def _preview(data: str | bytes) -> str:
    """repr of at most the first _PREVIEW characters or bytes: safe in a log line."""
    if len(data) > _PREVIEW:
        return f"{data[:_PREVIEW]!r}..."
    return repr(data)


class Keyring:
    """The cluster secrets by key id: sign with `current`, accept it or any of `accepted`.

    Only keyed HMAC states are kept, and the repr shows key ids only.
    """

    __slots__ = ("_current_id", "_macs")

    def __init__(
        self,
        current: tuple[int, bytes],
        accepted: Mapping[int, bytes] = types.MappingProxyType({}),
    ) -> None:
        current_id, current_secret = current
        secrets = dict(accepted)
        if secrets.setdefault(current_id, current_secret) != current_secret:
            raise ValueError(f"key id {current_id} is given two different secrets")
        self._macs: dict[int, hmac.HMAC] = {}
        for key_id, secret in secrets.items():
            if not 0 <= key_id <= _MAX_KEY_ID:
                raise ValueError(f"key id {key_id} is outside 0..{_MAX_KEY_ID}")
            if len(secret) < MIN_SECRET:
                raise ValueError(
                    f"secret for key id {key_id} is {len(secret)} bytes, "
                    f"at least {MIN_SECRET} are required"
                )
            self._macs[key_id] = hmac.new(bytes(secret), digestmod="sha256")
        self._current_id = current_id

    def __repr__(self) -> str:
        return f"Keyring(current={self._current_id}, key_ids={sorted(self._macs)})"

    @property
    def current_id(self) -> int:
        return self._current_id

    def digest(self, key_id: int, data: bytes) -> bytes:
        """HMAC-SHA256 of `data` with the secret of `key_id`; UnknownKey if there is none."""
        keyed = self._macs.get(key_id)
        if keyed is None:
            raise UnknownKey(f"unknown key id {key_id}")
        mac = keyed.copy()
        mac.update(data)
        return mac.digest()


@dataclasses.dataclass(frozen=True, slots=True)
class Envelope:
    """An opened frame: who sent the message, in which boot, with which counter, when."""

    sender: str
    boot: int
    counter: int
    sent_wall: float
    message: Message


class Sealer:
    """Signs messages from one sender; numbers its frames 1, 2, 3... within `boot`."""

    __slots__ = ("_counter", "_keyring", "boot", "sender")

    def __init__(self, keyring: Keyring, sender: str, boot: int) -> None:
        if not sender:
            raise ValueError("sender name is empty")
        if not 0 <= boot <= _INT_MAX:
            raise ValueError(f"boot number {boot} is outside 0..{_INT_MAX}")
        self._keyring = keyring
        self.sender = sender
        self.boot = boot
        self._counter = 1

    def __repr__(self) -> str:
        return f"Sealer(sender={self.sender!r}, boot={self.boot}, next_counter={self._counter})"

    def rekey(self, keyring: Keyring) -> None:
        """Sign with a new keyring (SIGHUP); the counter goes on, so receivers accept it."""
        self._keyring = keyring

    def seal(self, msg: Message, wall_time: float) -> bytes:
        """Frame `msg` as sent now (`wall_time`, seconds since the epoch).

        Raises Oversize if the frame would exceed MAX_FRAME, and ValueError if
        `msg` names another sender or holds a non-finite float (programming
        errors). A failed seal does not use up a counter.
        """
        own = getattr(msg, _SENDER_FIELD[type(msg)])
        if own != self.sender:
            raise ValueError(
                f"{type(msg).__name__} names sender {_preview(own)}, this is {self.sender!r}"
            )
        document = {
            "type": type(msg).__name__,
            "sender": self.sender,
            "boot": self.boot,
            "counter": self._counter,
            "sent": wall_time,
            "msg": _plain(msg),
        }
        body = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
        size = HEADER_SIZE + len(body) + MAC_SIZE
        if size > MAX_FRAME:
            raise Oversize(f"{type(msg).__name__} needs a {size}-byte frame, limit {MAX_FRAME}")
        key_id = self._keyring.current_id
        signed = _HEADER.pack(MAGIC, VERSION, key_id, len(body)) + body
        self._counter += 1
        return signed + self._keyring.digest(key_id, signed)


class Opener:
    """Checks frames from `allowed_senders` and keeps their replay state.

    Commands must also carry a sender wall-clock time within `command_window`
    seconds of the receiver's: replay state lives in memory, so this is what
    stops an old command from being replayed after the receiver restarts.
    Heartbeats and acks have no such check: after a receiver restart, a
    recorded one from the sender's current boot is accepted (once).
    """

    __slots__ = ("_keyring", "_windows", "command_window")

    def __init__(
        self,
        keyring: Keyring,
        allowed_senders: Collection[str],
        command_window: float,
        replay_window: int = 256,
    ) -> None:
        if not allowed_senders:
            raise ValueError("no allowed senders")
        if not (math.isfinite(command_window) and command_window > 0):
            raise ValueError(f"command window must be a positive number, not {command_window}")
        self._keyring = keyring
        self.command_window = command_window
        self._windows = {sender: ReplayWindow(replay_window) for sender in allowed_senders}

    def __repr__(self) -> str:
        return f"Opener(senders={sorted(self._windows)}, command_window={self.command_window})"

    def rekey(self, keyring: Keyring) -> None:
        """Accept a new keyring's keys (SIGHUP); the replay windows are kept."""
        self._keyring = keyring

    def open(self, frame: bytes, wall_time: float) -> Envelope:
        """Authenticate and decode `frame`, received at `wall_time`; WireError if refused."""
        if len(frame) > MAX_FRAME:
            raise Oversize(f"frame of {len(frame)} bytes, limit {MAX_FRAME}")
        key_id, body_len = _parse_header(frame)
        body_end = HEADER_SIZE + body_len
        size = body_end + MAC_SIZE
        if len(frame) < size:
            raise Truncated(f"frame of {len(frame)} bytes, its header announces {size}")
        if len(frame) > size:
            raise Malformed(f"{len(frame) - size} stray bytes after the frame")
        expected = self._keyring.digest(key_id, frame[:body_end])
        if not hmac.compare_digest(frame[body_end:], expected):
            raise BadSignature(f"bad signature for key id {key_id}")

        envelope = _decode_body(frame[HEADER_SIZE:body_end])
        message = envelope.message
        kind = type(message).__name__
        window = self._windows.get(envelope.sender)
        if window is None:
            raise UnknownSender(f"{kind} from unknown sender {_preview(envelope.sender)}")
        field = _SENDER_FIELD[type(message)]
        own = getattr(message, field)
        if own != envelope.sender:
            raise UnknownSender(
                f"{kind}.{field} {_preview(own)} differs from frame sender {envelope.sender!r}"
            )
        reason = window.check(envelope.boot, envelope.counter)
        if reason is not None:
            raise Replayed(f"{kind} from {envelope.sender!r}: {reason}")
        if type(message) in COMMANDS:
            skew = envelope.sent_wall - wall_time
            if abs(skew) > self.command_window:
                raise Stale(
                    f"{kind} from {envelope.sender!r} sent {skew:+.1f}s from now, "
                    f"outside the {self.command_window:g}s command window"
                )
        window.record(envelope.boot, envelope.counter)
        return envelope


def _parse_header(data: bytes) -> tuple[int, int]:
    """(key id, body length) from the start of `data`, refusing what cannot be a frame."""
    if len(data) < HEADER_SIZE:
        raise Truncated(f"{len(data)} bytes, shorter than the {HEADER_SIZE}-byte header")
    magic, version, key_id, body_len = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise BadMagic(f"bad magic, data starts {_preview(data)}")
    if version != VERSION:
        raise BadVersion(f"unsupported version {version}")
    if HEADER_SIZE + body_len + MAC_SIZE > MAX_FRAME:
        raise Oversize(f"header announces a {body_len}-byte body, frame limit {MAX_FRAME}")
    return key_id, body_len


async def write_frame(writer: asyncio.StreamWriter, frame: bytes) -> None:
    """Send one frame on a TCP stream. Connection errors are OSError."""
    if len(frame) > MAX_FRAME:
        raise Oversize(f"frame of {len(frame)} bytes, limit {MAX_FRAME}")
    writer.write(frame)
    await writer.drain()


async def read_frame(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Read one frame (not yet opened) from a TCP stream, all of it within `timeout` seconds.

    The size is checked from the header before the body is read. Raises
    ConnectionClosed on EOF before a frame, Truncated on EOF inside one,
    Oversize/BadMagic/BadVersion on a bad header, ReadTimeout; connection
    errors are OSError. After any error the stream is out of step: close it.
    """
    try:
        async with asyncio.timeout(timeout):
            try:
                header = await reader.readexactly(HEADER_SIZE)
            except asyncio.IncompleteReadError as e:
                if not e.partial:
                    raise ConnectionClosed("connection closed before a frame") from None
                raise Truncated(
                    f"connection closed after {len(e.partial)} of {HEADER_SIZE} header bytes"
                ) from None
            _, body_len = _parse_header(header)
            try:
                rest = await reader.readexactly(body_len + MAC_SIZE)
            except asyncio.IncompleteReadError as e:
                raise Truncated(
                    f"connection closed after {HEADER_SIZE + len(e.partial)} of "
                    f"{HEADER_SIZE + body_len + MAC_SIZE} frame bytes"
                ) from None
    except TimeoutError:
        raise ReadTimeout(f"no complete frame within {timeout:g}s") from None
    return header + rest


# --- Encoding -----------------------------------------------------------------------------


def _plain(value: object) -> object:
    """A message as JSON-ready values: dataclasses as objects, tuples as arrays.

    Enum members are `str`s and need no conversion.
    """
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


# --- Strict decoding ----------------------------------------------------------------------
# Decoders take a value from json.loads and a path for error messages ("Ack.views[1].age").
# They accept exactly the JSON types the dataclass fields declare: no bool for int, no 1.0
# for int, no non-finite floats; an int is accepted for a float (JSON cannot tell 1.0 from 1
# in every encoder). Objects must have exactly the declared fields.

_Decoder = Callable[[object, str], Any]
_JSON_TYPES = {
    dict: "object",
    list: "array",
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
}
_ENVELOPE_FIELDS = frozenset({"type", "sender", "boot", "counter", "sent", "msg"})


def _wrong_type(path: str, expected: str, value: object) -> NoReturn:
    raise Malformed(f"{path}: expected {expected}, got {_JSON_TYPES.get(type(value), 'other')}")


def _decode_str(value: object, path: str) -> str:
    if type(value) is not str:
        _wrong_type(path, "string", value)
    try:
        value.encode()
    except UnicodeEncodeError:
        raise Malformed(f"{path}: string holds a lone surrogate") from None
    return value


def _decode_bool(value: object, path: str) -> bool:
    if type(value) is not bool:
        _wrong_type(path, "boolean", value)
    return value


def _decode_int(value: object, path: str) -> int:
    if type(value) is not int:
        _wrong_type(path, "integer", value)
    if not _INT_MIN <= value <= _INT_MAX:
        raise Malformed(f"{path}: integer outside the 64-bit range")
    return value


def _decode_float(value: object, path: str) -> float:
    if type(value) is int:
        return float(_decode_int(value, path))
    if type(value) is not float:
        _wrong_type(path, "number", value)
    if not math.isfinite(value):
        raise Malformed(f"{path}: number out of range")
    return value


def _fields(value: object, path: str, names: frozenset[str]) -> dict[str, object]:
    """`value` as a JSON object with exactly the keys `names`."""
    if type(value) is not dict:
        _wrong_type(path, "object", value)
    if missing := names - value.keys():
        raise Malformed(f"{path}: missing field {min(missing)!r}")
    if extra := value.keys() - names:
        raise Malformed(f"{path}: unexpected field {_preview(min(extra))}")
    return value


def _enum_decoder(enum: type[StrEnum]) -> _Decoder:
    def decode(value: object, path: str) -> StrEnum:
        text = _decode_str(value, path)
        try:
            return enum(text)
        except ValueError:
            raise Malformed(f"{path}: unknown {enum.__name__} {_preview(text)}") from None

    return decode


def _tuple_decoder(item: _Decoder) -> _Decoder:
    def decode(value: object, path: str) -> tuple[object, ...]:
        if type(value) is not list:
            _wrong_type(path, "array", value)
        return tuple(item(element, f"{path}[{i}]") for i, element in enumerate(value))

    return decode


def _optional_decoder(inner: _Decoder) -> _Decoder:
    def decode(value: object, path: str) -> object:
        return None if value is None else inner(value, path)

    return decode


def _dataclass_decoder(cls: type[Any]) -> _Decoder:
    hints = get_type_hints(cls)
    decoders = {f.name: _decoder_for(hints[f.name]) for f in dataclasses.fields(cls)}
    names = frozenset(decoders)

    def decode(value: object, path: str) -> object:
        fields = _fields(value, path, names)
        return cls(**{name: dec(fields[name], f"{path}.{name}") for name, dec in decoders.items()})

    return decode


_SCALAR_DECODERS: dict[object, _Decoder] = {
    str: _decode_str,
    bool: _decode_bool,
    int: _decode_int,
    float: _decode_float,
}


def _decoder_for(hint: object) -> _Decoder:
    """A strict decoder for a field type; TypeError (at import) for a type the wire lacks."""
    if hint in _SCALAR_DECODERS:
        return _SCALAR_DECODERS[hint]
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        return _enum_decoder(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_decoder(hint)
    origin, args = get_origin(hint), get_args(hint)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _tuple_decoder(_decoder_for(args[0]))
    if origin is types.UnionType and len(args) == 2 and type(None) in args:
        (inner,) = (arg for arg in args if arg is not type(None))
        return _optional_decoder(_decoder_for(inner))
    raise TypeError(f"no wire decoder for field type {hint!r}")


_MESSAGE_DECODERS: dict[str, _Decoder] = {
    cls.__name__: _dataclass_decoder(cls) for cls in get_args(Message)
}


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise Malformed("duplicate key in a JSON object")
    return obj


def _refuse_constant(name: str) -> NoReturn:
    raise Malformed(f"{name} is not a valid number")


def _decode_body(body: bytes) -> Envelope:
    try:
        document = json.loads(
            body.decode(), object_pairs_hook=_unique_keys, parse_constant=_refuse_constant
        )
    except RecursionError:
        raise Malformed("JSON nested too deeply") from None
    except ValueError as e:  # also UnicodeDecodeError and too many digits in an integer
        raise Malformed(f"invalid JSON: {e}") from None
    fields = _fields(document, "frame", _ENVELOPE_FIELDS)
    kind = _decode_str(fields["type"], "type")
    decode = _MESSAGE_DECODERS.get(kind)
    if decode is None:
        raise Malformed(f"unknown message type {_preview(kind)}")
    sender = _decode_str(fields["sender"], "sender")
    boot = _decode_int(fields["boot"], "boot")
    counter = _decode_int(fields["counter"], "counter")
    if not sender:
        raise Malformed("sender: empty")
    if boot < 0:
        raise Malformed("boot: negative")
    if counter < 1:
        raise Malformed("counter: below 1")
    return Envelope(
        sender=sender,
        boot=boot,
        counter=counter,
        sent_wall=_decode_float(fields["sent"], "sent"),
        message=decode(fields["msg"], kind),
    )
