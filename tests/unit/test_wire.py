"""Frames: encoding, authentication, strict decoding, replay protection, TCP framing."""

import asyncio
import contextlib
import hmac
import json
import random
import struct
from collections.abc import Callable
from typing import Any, cast, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failoverd.core.messages import (
    Ack,
    Heartbeat,
    Message,
    PeerView,
    ShutdownReply,
    ShutdownRequest,
    TakeoverReply,
    TakeoverRequest,
)
from failoverd.core.types import NodeState, Preference, ShutdownOutcome
from failoverd.wire import (
    HEADER_SIZE,
    MAC_SIZE,
    MAGIC,
    MAX_FRAME,
    BadMagic,
    BadSignature,
    BadVersion,
    ConnectionClosed,
    Envelope,
    Keyring,
    Malformed,
    Opener,
    Oversize,
    ReadTimeout,
    Replayed,
    Sealer,
    Stale,
    Truncated,
    UnknownKey,
    UnknownSender,
    WireError,
    read_frame,
    write_frame,
)

SECRET = b"correct-horse-battery-staple-0001"
OLD_SECRET = b"an-older-cluster-secret-being-rotated-out"
KEYRING = Keyring((1, SECRET), {})
NOW = 1_700_000_000.0
WINDOW = 30.0


def heartbeat(sender: str = "alpha", **changes: Any) -> Heartbeat:
    fields: dict[str, Any] = {
        "sender": sender,
        "state": NodeState.ACTIVE,
        "epoch": 7,
        "preference": Preference.PRIMARY,
        "checks_ok": False,
        "failing_checks": ("http", "smtp"),
        "maintenance": False,
        "lease_request": True,
        "lease_epoch": 8,
        "lease_time": 12.5,
        "released_epoch": 6,
        "sent_at": 3456.25,
    }
    return Heartbeat(**(fields | changes))


VIEW = PeerView(
    node="bravo", age=1.5, state=NodeState.STANDBY, epoch=7, checks_ok=True, maintenance=False
)
SAMPLES: list[Message] = [
    heartbeat(),
    Ack("alpha", "bravo", 8, True, "", 3456.25, 7, (VIEW, VIEW)),
    Ack("alpha", "bravo", 8, None, "no vote asked", 1.0, 7, ()),
    ShutdownRequest("r-1", "alpha", 7, "operator switchover: ünïcode", True),
    ShutdownReply("r-1", "alpha", ShutdownOutcome.CONFIRMED, ""),
    TakeoverRequest("r-2", "alpha", "failback"),
    TakeoverReply("r-2", "alpha", False, "maintenance"),
]


def opener(keyring: Keyring = KEYRING, replay_window: int = 256) -> Opener:
    return Opener(keyring, {"alpha", "bravo"}, WINDOW, replay_window)


def raw_frame(
    body: bytes, *, key_id: int = 1, secret: bytes = SECRET, magic: bytes = MAGIC, version: int = 1
) -> bytes:
    """A frame built independently of failoverd.wire, following the documented layout."""
    signed = struct.pack(">4sBHI", magic, version, key_id, len(body)) + body
    return signed + hmac.new(secret, signed, "sha256").digest()


def document(msg: Message = SAMPLES[0], counter: int = 1) -> dict[str, Any]:
    """The JSON body of a genuine frame, to tamper with and re-sign with raw_frame."""
    sealer = Sealer(KEYRING, "alpha", 1)
    for _ in range(counter - 1):
        sealer.seal(msg, NOW)
    frame = sealer.seal(msg, NOW)
    return cast(dict[str, Any], json.loads(frame[HEADER_SIZE:-MAC_SIZE]))


def signed(doc: object) -> bytes:
    return raw_frame(json.dumps(doc).encode())


def test_samples_cover_every_message_type() -> None:
    assert {type(m) for m in SAMPLES} == set(get_args(Message))


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg: Message) -> None:
    frame = Sealer(KEYRING, "alpha", 3).seal(msg, NOW)
    envelope = opener().open(frame, NOW + 1)
    assert envelope == Envelope("alpha", 3, 1, NOW, msg)
    assert type(envelope.message) is type(msg)


def test_decoded_fields_have_their_declared_types() -> None:
    envelope = opener().open(Sealer(KEYRING, "alpha", 1).seal(SAMPLES[1], NOW), NOW)
    ack = envelope.message
    assert isinstance(ack, Ack)
    assert type(ack.views) is tuple and type(ack.views[0]) is PeerView
    assert type(ack.views[0].state) is NodeState


def test_frame_layout() -> None:
    frame = Sealer(KEYRING, "alpha", 3).seal(SAMPLES[0], NOW)
    magic, version, key_id, body_len = struct.unpack(">4sBHI", frame[:HEADER_SIZE])
    assert (magic, version, key_id) == (b"FOD1", 1, 1)
    assert len(frame) == HEADER_SIZE + body_len + MAC_SIZE
    body = frame[HEADER_SIZE:-MAC_SIZE]
    assert b": " not in body and b", " not in body
    assert json.loads(body)["msg"]["state"] == "active"
    assert frame == raw_frame(body)


def test_counter_starts_at_one_and_increases() -> None:
    sealer = Sealer(KEYRING, "alpha", 1)
    receiver = opener()
    counters = [receiver.open(sealer.seal(SAMPLES[0], NOW), NOW).counter for _ in range(3)]
    assert counters == [1, 2, 3]


def test_int_is_accepted_for_a_float_field() -> None:
    doc = document()
    doc["msg"]["sent_at"] = 5
    message = opener().open(signed(doc), NOW).message
    assert isinstance(message, Heartbeat)
    assert message.sent_at == 5.0 and type(message.sent_at) is float


# --- Forgery ---------------------------------------------------------------------------


def test_every_flipped_bit_is_refused_and_leaves_the_window_alone() -> None:
    frame = Sealer(KEYRING, "alpha", 1).seal(SAMPLES[0], NOW)
    receiver = opener()
    for bit in range(len(frame) * 8):
        forged = bytearray(frame)
        forged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(WireError) as caught:
            receiver.open(bytes(forged), NOW)
        if bit // 8 >= HEADER_SIZE:  # body or MAC
            assert type(caught.value) is BadSignature
    assert receiver.open(frame, NOW).counter == 1


def test_wrong_secret_is_a_bad_signature() -> None:
    impostor = Sealer(Keyring((1, b"x" * 32), {}), "alpha", 1)
    with pytest.raises(BadSignature, match="key id 1"):
        opener().open(impostor.seal(SAMPLES[0], NOW), NOW)


def test_unknown_key_id() -> None:
    stranger = Sealer(Keyring((9, SECRET), {}), "alpha", 1)
    with pytest.raises(UnknownKey, match="unknown key id 9"):
        opener().open(stranger.seal(SAMPLES[0], NOW), NOW)


def test_key_rotation() -> None:
    receiver = opener(Keyring((2, SECRET), {1: OLD_SECRET}))
    old = Sealer(Keyring((1, OLD_SECRET), {}), "alpha", 1)
    new = Sealer(Keyring((2, SECRET), {1: OLD_SECRET}), "bravo", 1)
    assert receiver.open(old.seal(SAMPLES[0], NOW), NOW).sender == "alpha"
    assert receiver.open(new.seal(heartbeat("bravo"), NOW), NOW).sender == "bravo"
    assert new.seal(heartbeat("bravo"), NOW)[5:7] == b"\x00\x02"  # signs with the current key
    with pytest.raises(UnknownKey):
        opener().open(new.seal(heartbeat("bravo"), NOW), NOW)


@pytest.mark.parametrize(
    ("current", "accepted", "message"),
    [
        ((1, b"short"), {}, "secret for key id 1 is 5 bytes, at least 32"),
        ((1, SECRET), {2: SECRET[:31]}, "secret for key id 2 is 31 bytes"),
        ((70000, SECRET), {}, "key id 70000 is outside"),
        ((-1, SECRET), {}, "key id -1 is outside"),
        ((1, SECRET), {1: OLD_SECRET}, "key id 1 is given two different secrets"),
    ],
)
def test_keyring_refuses_bad_keys(
    current: tuple[int, bytes], accepted: dict[int, bytes], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        Keyring(current, accepted)
    assert SECRET.decode() not in str(caught.value)
    assert "short" not in str(caught.value)


# --- Replay ----------------------------------------------------------------------------


def test_exact_duplicate_is_replayed() -> None:
    frame = Sealer(KEYRING, "alpha", 1).seal(SAMPLES[0], NOW)
    receiver = opener()
    receiver.open(frame, NOW)
    with pytest.raises(Replayed, match="counter 1 of boot 1 already seen"):
        receiver.open(frame, NOW)


def test_old_boot_is_replayed_and_new_boot_restarts_counters() -> None:
    receiver = opener()
    before = Sealer(KEYRING, "alpha", 4).seal(SAMPLES[0], NOW)
    current = Sealer(KEYRING, "alpha", 5)
    for _ in range(3):
        receiver.open(current.seal(SAMPLES[0], NOW), NOW)
    with pytest.raises(Replayed, match="boot 4 is older than boot 5"):
        receiver.open(before, NOW)
    assert receiver.open(Sealer(KEYRING, "alpha", 6).seal(SAMPLES[0], NOW), NOW).boot == 6


def test_replay_state_is_per_sender() -> None:
    receiver = opener()
    receiver.open(Sealer(KEYRING, "alpha", 9).seal(SAMPLES[0], NOW), NOW)
    assert receiver.open(Sealer(KEYRING, "bravo", 1).seal(heartbeat("bravo"), NOW), NOW).boot == 1


def test_reordering_within_the_window_is_accepted() -> None:
    sealer = Sealer(KEYRING, "alpha", 1)
    frames = [sealer.seal(SAMPLES[0], NOW) for _ in range(20)]
    shuffled = frames[:]
    random.Random(4).shuffle(shuffled)
    receiver = opener()
    assert sorted(receiver.open(f, NOW).counter for f in shuffled) == list(range(1, 21))
    for frame in frames:
        with pytest.raises(Replayed):
            receiver.open(frame, NOW)


def test_too_old_counter_is_replayed() -> None:
    sealer = Sealer(KEYRING, "alpha", 1)
    frames = [sealer.seal(SAMPLES[0], NOW) for _ in range(300)]
    receiver = opener(replay_window=256)
    receiver.open(frames[299], NOW)  # counter 300
    assert receiver.open(frames[44], NOW).counter == 45  # 255 behind
    with pytest.raises(Replayed, match="counter 44 is 256 behind"):
        receiver.open(frames[43], NOW)


def test_refused_frames_do_not_poison_the_window() -> None:
    """Frames far ahead or from a later boot, refused for any reason, must not move the window."""
    receiver = opener()
    ahead = document(counter=1)
    ahead["counter"] = 10**9
    ahead["boot"] = 99
    forged = json.dumps(ahead).encode()
    malformed = ahead | {"msg": ahead["msg"] | {"epoch": "seven"}}
    impersonating = ahead | {"msg": ahead["msg"] | {"sender": "bravo"}}
    stale = document(SAMPLES[3]) | {"counter": 10**9, "boot": 99, "sent": NOW - 3600}
    refusals: list[tuple[bytes, type[WireError]]] = [
        (raw_frame(forged, secret=b"y" * 32), BadSignature),
        (raw_frame(forged)[:-1] + b"\x00", BadSignature),
        (signed(malformed), Malformed),
        (signed(impersonating), UnknownSender),
        (signed(stale), Stale),
    ]
    for frame, error in refusals:
        with pytest.raises(error):
            receiver.open(frame, NOW)
    assert receiver.open(Sealer(KEYRING, "alpha", 1).seal(SAMPLES[0], NOW), NOW).counter == 1


# --- Command time window ---------------------------------------------------------------


@pytest.mark.parametrize("msg", [m for m in SAMPLES if not isinstance(m, Heartbeat | Ack)])
@pytest.mark.parametrize("skew", [WINDOW + 0.5, -(WINDOW + 0.5)])
def test_stale_command(msg: Message, skew: float) -> None:
    frame = Sealer(KEYRING, "alpha", 1).seal(msg, NOW)
    with pytest.raises(Stale, match="outside the 30s command window"):
        opener().open(frame, NOW + skew)


def test_command_at_the_edge_of_the_window_is_accepted() -> None:
    frame = Sealer(KEYRING, "alpha", 1).seal(SAMPLES[3], NOW)
    assert opener().open(frame, NOW + WINDOW).message == SAMPLES[3]


def test_a_stale_command_can_still_arrive_in_time() -> None:
    """Stale is checked before the window records the counter."""
    frame = Sealer(KEYRING, "alpha", 1).seal(SAMPLES[3], NOW)
    receiver = opener()
    with pytest.raises(Stale):
        receiver.open(frame, NOW + 100)
    assert receiver.open(frame, NOW).counter == 1


@pytest.mark.parametrize("msg", SAMPLES[:3], ids=lambda m: type(m).__name__)
def test_heartbeats_and_acks_have_no_time_window(msg: Message) -> None:
    frame = Sealer(KEYRING, "alpha", 1).seal(msg, NOW)
    assert opener().open(frame, NOW + 86_400).message == msg


def test_opener_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="command window"):
        Opener(KEYRING, {"alpha"}, float("nan"))
    with pytest.raises(ValueError, match="command window"):
        Opener(KEYRING, {"alpha"}, 0)
    with pytest.raises(ValueError, match="no allowed senders"):
        Opener(KEYRING, set(), WINDOW)
    with pytest.raises(ValueError, match="at least 1"):
        Opener(KEYRING, {"alpha"}, WINDOW, replay_window=0)


# --- Senders ---------------------------------------------------------------------------


def test_sender_not_allowed() -> None:
    mallory = Sealer(KEYRING, "mallory", 1)
    with pytest.raises(UnknownSender, match="unknown sender 'mallory'"):
        opener().open(mallory.seal(heartbeat("mallory"), NOW), NOW)


@pytest.mark.parametrize(("msg", "field"), [(SAMPLES[0], "sender"), (SAMPLES[1], "voter")])
def test_message_sender_must_match_frame_sender(msg: Message, field: str) -> None:
    doc = document(msg)
    doc["msg"][field] = "bravo"
    with pytest.raises(UnknownSender, match=f"{field} 'bravo' differs from frame sender 'alpha'"):
        opener().open(signed(doc), NOW)


def test_sealer_refuses_a_message_naming_another_sender() -> None:
    with pytest.raises(ValueError, match="names sender 'bravo'"):
        Sealer(KEYRING, "alpha", 1).seal(heartbeat("bravo"), NOW)


@pytest.mark.parametrize(("sender", "boot"), [("", 1), ("alpha", -1), ("alpha", 2**63)])
def test_sealer_refuses_bad_identity(sender: str, boot: int) -> None:
    with pytest.raises(ValueError):
        Sealer(KEYRING, sender, boot)


def test_failed_seal_does_not_use_a_counter() -> None:
    sealer = Sealer(KEYRING, "alpha", 1)
    with pytest.raises(ValueError):
        sealer.seal(heartbeat(lease_time=float("nan")), NOW)
    with pytest.raises(Oversize):
        sealer.seal(heartbeat(failing_checks=("x" * MAX_FRAME,)), NOW)
    assert opener().open(sealer.seal(SAMPLES[0], NOW), NOW).counter == 1


# --- Framing ---------------------------------------------------------------------------


def test_truncated_at_every_length() -> None:
    frame = Sealer(KEYRING, "alpha", 1).seal(SAMPLES[1], NOW)
    receiver = opener()
    for length in range(len(frame)):
        with pytest.raises(Truncated):
            receiver.open(frame[:length], NOW)


def test_largest_frame_is_accepted_and_one_byte_more_is_oversize() -> None:
    sealer = Sealer(KEYRING, "alpha", 1)
    base = len(sealer.seal(TakeoverRequest("r", "alpha", ""), NOW))
    largest = sealer.seal(TakeoverRequest("r", "alpha", "x" * (MAX_FRAME - base)), NOW)
    assert len(largest) == MAX_FRAME
    assert opener().open(largest, NOW).counter == 2
    with pytest.raises(Oversize, match="needs a 8193-byte frame"):
        sealer.seal(TakeoverRequest("r", "alpha", "x" * (MAX_FRAME - base + 1)), NOW)


def test_oversize_is_refused_before_anything_else() -> None:
    frame = Sealer(KEYRING, "alpha", 1).seal(SAMPLES[0], NOW)
    with pytest.raises(Oversize, match="frame of 8193 bytes"):
        opener().open(frame + b"\x00" * (MAX_FRAME + 1 - len(frame)), NOW)
    with pytest.raises(Oversize, match="frame of 8193 bytes"):
        opener().open(b"\xff" * (MAX_FRAME + 1), NOW)


def test_header_announcing_too_much_is_oversize() -> None:
    header = struct.pack(">4sBHI", MAGIC, 1, 1, MAX_FRAME)
    with pytest.raises(Oversize, match="header announces"):
        opener().open(header + b"\x00" * 100, NOW)


def test_stray_bytes_after_a_frame() -> None:
    frame = Sealer(KEYRING, "alpha", 1).seal(SAMPLES[0], NOW)
    with pytest.raises(Malformed, match="1 stray bytes"):
        opener().open(frame + b"\x00", NOW)


def test_legacy_plaintext_command_is_bad_magic() -> None:
    with pytest.raises(BadMagic, match="SHUTDOWN_YOUR_SERVICE"):
        opener().open(b"SHUTDOWN_YOUR_SERVICE\n", NOW)


def test_bad_version() -> None:
    with pytest.raises(BadVersion, match="unsupported version 2"):
        opener().open(raw_frame(b"{}", version=2), NOW)


# --- Strict content validation ---------------------------------------------------------


def body_with(path: tuple[str | int, ...], value: object) -> Callable[[], bytes]:
    """A genuine Heartbeat (or Ack for paths into "views") body with one value replaced."""

    def build() -> bytes:
        doc = document(SAMPLES[1] if "views" in path else SAMPLES[0])
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return json.dumps(doc).encode()

    return build


def body_without(*path: str) -> Callable[[], bytes]:
    def build() -> bytes:
        doc = document()
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        return json.dumps(doc).encode()

    return build


def literal(old: str, new: str) -> Callable[[], bytes]:
    """A genuine heartbeat body with some of its JSON text replaced."""

    def build() -> bytes:
        body = json.dumps(document(), separators=(",", ":"))
        assert old in body
        return body.replace(old, new).encode()

    return build


MALFORMED: dict[str, Callable[[], bytes]] = {
    "not JSON": lambda: b"{",
    "not UTF-8": lambda: b'{"type":"\xff"}',
    "UTF-16": lambda: '{"type":"Heartbeat"}'.encode("utf-16"),
    "array": lambda: b"[]",
    "empty": lambda: b"",
    "deep nesting": lambda: b"[" * 4000 + b"]" * 4000,
    "NaN": literal("3456.25", "NaN"),
    "Infinity": literal("3456.25", "-Infinity"),
    "1e400": literal("3456.25", "1e400"),
    "-1e400": literal("3456.25", "-1e400"),
    "duplicate key": literal('"epoch":7', '"epoch":7,"epoch":7'),
    "huge integer": literal('"epoch":7', '"epoch":' + "9" * 5000),
    "integer too big for a float": literal("3456.25", "1" + "0" * 400),
    "integer beyond 64 bits": body_with(("msg", "epoch"), 2**63),
    "bool for int": body_with(("msg", "epoch"), True),
    "float for int": body_with(("msg", "epoch"), 7.0),
    "string for int": body_with(("msg", "epoch"), "7"),
    "int for bool": body_with(("msg", "checks_ok"), 1),
    "null for bool": body_with(("msg", "checks_ok"), None),
    "string for float": body_with(("msg", "sent_at"), "1.5"),
    "bool for float": body_with(("msg", "sent_at"), False),
    "unknown enum value": body_with(("msg", "state"), "zombie"),
    "enum name not value": body_with(("msg", "state"), "ACTIVE"),
    "string for tuple": body_with(("msg", "failing_checks"), "http"),
    "int in tuple": body_with(("msg", "failing_checks"), ["http", 3]),
    "lone surrogate": body_with(("msg", "failing_checks"), ["\ud800"]),
    "extra message field": body_with(("msg", "extra"), 1),
    "missing message field": body_without("msg", "epoch"),
    "extra envelope field": body_with(("extra",), 1),
    "missing envelope field": body_without("counter"),
    "unknown type": body_with(("type",), "Reboot"),
    "nested type as message": body_with(("type",), "PeerView"),
    "type not a string": body_with(("type",), ["Heartbeat"]),
    "empty sender": body_with(("sender",), ""),
    "negative boot": body_with(("boot",), -1),
    "counter zero": body_with(("counter",), 0),
    "float counter": body_with(("counter",), 1.0),
    "msg not an object": body_with(("msg",), []),
    "bad granted": body_with(("msg", "granted"), "yes"),
    "view not an object": body_with(("msg", "views", 0), "bravo"),
    "view with extra field": body_with(("msg", "views", 1, "extra"), 0),
    "view with bad age": body_with(("msg", "views", 1, "age"), None),
}


@pytest.mark.parametrize("build", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed(build: Callable[[], bytes]) -> None:
    receiver = opener()
    with pytest.raises(Malformed) as caught:
        receiver.open(raw_frame(build()), NOW)
    line = str(caught.value)
    assert "\n" not in line and 0 < len(line) <= 200


def test_malformed_message_names_the_field() -> None:
    with pytest.raises(Malformed, match=r"^Ack\.views\[1\]\.age: expected number, got null$"):
        opener().open(raw_frame(MALFORMED["view with bad age"]()), NOW)


# --- Never anything but WireError ------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def open_or_wire_error(frame: bytes) -> None:
    with contextlib.suppress(WireError):
        opener().open(frame, NOW)


@given(st.binary(max_size=MAX_FRAME + 10))
def test_arbitrary_bytes(frame: bytes) -> None:
    open_or_wire_error(frame)


@given(st.integers(0, 2), st.integers(0, 2**32 - 1), st.binary(max_size=200))
def test_arbitrary_bytes_after_a_plausible_header(key_id: int, length: int, rest: bytes) -> None:
    open_or_wire_error(struct.pack(">4sBHI", MAGIC, 1, key_id, length) + rest)


@given(st.binary(max_size=500))
def test_arbitrary_signed_bodies(body: bytes) -> None:
    open_or_wire_error(raw_frame(body))


@given(JSON_VALUES)
def test_arbitrary_signed_json(value: object) -> None:
    open_or_wire_error(raw_frame(json.dumps(value).encode()))


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES), st.data())
def test_signed_messages_with_one_part_replaced(msg: Message, data: st.DataObject) -> None:
    """Walk into a genuine body and replace, delete or add one part: WireError or a message."""
    doc = document(msg)
    target: Any = doc
    while True:
        keys = list(target) if isinstance(target, dict) else list(range(len(target)))
        if not keys:
            break
        key = data.draw(st.sampled_from(keys))
        if not isinstance(target[key], dict | list) or data.draw(st.booleans()):
            break
        target = target[key]
    action = data.draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "add" and isinstance(target, dict):
        target[data.draw(st.text(max_size=10))] = data.draw(JSON_VALUES)
    elif action == "delete" and keys:
        del target[key]
    elif keys:
        target[key] = data.draw(JSON_VALUES)
    try:
        envelope = opener().open(signed(doc), NOW)
    except WireError:
        return
    assert type(envelope.message) in get_args(Message)


# --- Secrets and log lines -------------------------------------------------------------


def collect_errors() -> list[Exception]:
    errors: list[Exception] = []
    frame = Sealer(KEYRING, "alpha", 1).seal(SAMPLES[3], NOW)
    attempts: list[Callable[[], object]] = [
        lambda: opener().open(frame[:20], NOW),
        lambda: opener().open(b"\x00" * (MAX_FRAME + 1), NOW),
        lambda: opener().open(b"X" * 5000, NOW),
        lambda: opener().open(raw_frame(b"{}", version=9), NOW),
        lambda: opener().open(raw_frame(b"{}", key_id=3), NOW),
        lambda: opener().open(raw_frame(b"{}", secret=b"z" * 32), NOW),
        lambda: opener().open(raw_frame(b"{" + b"x" * 5000), NOW),
        lambda: opener().open(signed(document() | {"type": "T" * 5000}), NOW),
        lambda: opener().open(signed(document() | {"sender": "m" * 5000}), NOW),
        lambda: opener().open(frame, NOW + 1000),
        lambda: Keyring((1, SECRET[:20]), {}),
        lambda: Sealer(KEYRING, "alpha", 1).seal(heartbeat("m" * 5000), NOW),
    ]
    receiver = opener()
    receiver.open(frame, NOW)
    attempts.append(lambda: receiver.open(frame, NOW))
    for attempt in attempts:
        with pytest.raises(Exception) as caught:
            attempt()
        errors.append(caught.value)
    return errors


def test_error_lines_are_short_and_single() -> None:
    errors = collect_errors()
    assert len({type(e) for e in errors}) >= 10
    for error in errors:
        line = str(error)
        assert "\n" not in line and 0 < len(line) <= 200, line


def test_secret_appears_in_no_repr_or_str() -> None:
    sealer = Sealer(KEYRING, "alpha", 1)
    receiver = opener(Keyring((1, SECRET), {2: OLD_SECRET}))
    envelope = receiver.open(sealer.seal(SAMPLES[0], NOW), NOW)
    texts = [repr(x) for x in (KEYRING, sealer, receiver, envelope)]
    texts += [str(x) for x in (KEYRING, sealer, receiver, envelope)]
    texts += [f"{e!s} {e!r}" for e in collect_errors()]
    assert "Keyring(current=1, key_ids=[1])" in texts
    for secret in (SECRET, OLD_SECRET):
        for text in texts:
            assert secret.decode() not in text
            assert secret.hex() not in text
            assert secret[:16].decode() not in text


# --- Volume and TCP --------------------------------------------------------------------


def test_ten_thousand_heartbeats() -> None:
    sealer = Sealer(KEYRING, "alpha", 1)
    receiver = opener()
    last = None
    for _ in range(10_000):
        last = receiver.open(sealer.seal(SAMPLES[0], NOW), NOW)
    assert last is not None and last.counter == 10_000


def test_tcp_round_trip_over_loopback() -> None:
    frames = [Sealer(KEYRING, "alpha", 1).seal(m, NOW) for m in SAMPLES[3:5]]

    async def scenario() -> list[bytes]:
        received: list[bytes] = []
        done = asyncio.get_running_loop().create_future()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    received.append(await read_frame(reader, timeout=5))
            except ConnectionClosed:
                done.set_result(None)
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            for frame in frames:
                await write_frame(writer, frame)
            writer.close()
            await writer.wait_closed()
            await asyncio.wait_for(done, 5)
        return received

    assert asyncio.run(scenario()) == frames


def read_from(data: bytes, eof: bool = True, timeout: float = 5) -> bytes:
    async def scenario() -> bytes:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        if eof:
            reader.feed_eof()
        return await read_frame(reader, timeout)

    return asyncio.run(scenario())


def test_tcp_eof_before_a_frame() -> None:
    with pytest.raises(ConnectionClosed):
        read_from(b"")


@pytest.mark.parametrize("cut", [1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 5, -1])
def test_tcp_eof_inside_a_frame(cut: int) -> None:
    frame = Sealer(KEYRING, "alpha", 1).seal(SAMPLES[0], NOW)
    with pytest.raises(Truncated) as caught:
        read_from(frame[:cut])
    assert type(caught.value) is Truncated


def test_tcp_oversize_header_is_refused_without_reading_the_body() -> None:
    """No body and no EOF follow: reading on would time out rather than raise Oversize."""
    header = struct.pack(">4sBHI", MAGIC, 1, 1, 2**32 - 1)
    with pytest.raises(Oversize, match="header announces"):
        read_from(header, eof=False)


def test_tcp_legacy_plaintext_is_bad_magic() -> None:
    with pytest.raises(BadMagic, match="SHUTDOWN_YO"):
        read_from(b"SHUTDOWN_YOUR_SERVICE\n", eof=False)


def test_tcp_stalled_peer_times_out() -> None:
    frame = Sealer(KEYRING, "alpha", 1).seal(SAMPLES[0], NOW)
    with pytest.raises(ReadTimeout, match=r"within 0\.05s"):
        read_from(frame[:-1], eof=False, timeout=0.05)


def test_tcp_reads_exactly_one_frame() -> None:
    sealer = Sealer(KEYRING, "alpha", 1)
    first, second = sealer.seal(SAMPLES[0], NOW), sealer.seal(SAMPLES[0], NOW)
    assert read_from(first + second) == first


class RecordingWriter:
    def __init__(self) -> None:
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data

    async def drain(self) -> None:
        pass


def test_write_frame_refuses_oversize_and_writes_nothing() -> None:
    writer = RecordingWriter()
    with pytest.raises(Oversize):
        asyncio.run(write_frame(cast(asyncio.StreamWriter, writer), b"x" * (MAX_FRAME + 1)))
    assert writer.written == b""
