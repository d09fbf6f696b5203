"""The HTTP API over real loopback sockets, with a fake daemon behind it."""

import http.client
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator, Mapping

import pytest
from fake_daemon import HISTORY, METRICS_TYPE, SECRET, FakeHandle, status_doc

from failoverd import apiauth
from failoverd.api import MAX_BODY, ApiServer, ApiServerError
from failoverd.core.events import Operation
from failoverd.runtime.handle import OperationResult

OPERATE_TIMEOUT = 5.0


class Answer:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = response.headers
        self.body = response.read()

    def json(self) -> object:
        assert self.headers["Content-Type"].startswith("application/json")
        return json.loads(self.body)


def call(
    server: ApiServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        return Answer(conn.getresponse())
    finally:
        conn.close()


def signed(
    server: ApiServer,
    path: str,
    body: bytes = b'{"nonce":"1"}',
    *,
    secret: bytes = SECRET,
    at: float | None = None,
    sign_path: str | None = None,
) -> Answer:
    header = apiauth.sign(
        secret, "POST", sign_path or path, body, time.time() if at is None else at
    )
    return call(server, "POST", path, body, {apiauth.HEADER: header})


@pytest.fixture
def handle() -> FakeHandle:
    return FakeHandle()


@pytest.fixture
def server(handle: FakeHandle) -> Iterator[ApiServer]:
    api = ApiServer(
        handle, "127.0.0.1", 0, logging.getLogger("test.api"), operate_timeout=OPERATE_TIMEOUT
    )
    api.start()
    yield api
    api.stop()


def wait_for(condition: object, timeout: float = 5.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# -- apiauth ---------------------------------------------------------------------------------


def test_a_signature_verifies_only_for_its_request_key_and_window() -> None:
    now = 1_700_000_000.0
    header = apiauth.sign(SECRET, "post", "/switchover", b"body", now)
    assert header.startswith("1700000000:")
    ok = {"now": now + 29.0, "window": 30.0}
    assert apiauth.verify(SECRET, "POST", "/switchover", b"body", header, **ok)
    assert apiauth.verify(SECRET, "POST", "/switchover", b"body", header, now=now - 30.0)
    assert not apiauth.verify(SECRET, "POST", "/switchover", b"body", header, now=now + 31.0)
    assert not apiauth.verify(SECRET, "POST", "/failback", b"body", header, **ok)
    assert not apiauth.verify(SECRET, "GET", "/switchover", b"body", header, **ok)
    assert not apiauth.verify(SECRET, "POST", "/switchover", b"bodY", header, **ok)
    assert not apiauth.verify(b"x" * 32, "POST", "/switchover", b"body", header, **ok)


def test_a_keyring_accepts_every_key_in_it() -> None:
    old, new = b"o" * 32, b"n" * 32
    header = apiauth.sign(old, "POST", "/failback", b"", 100.0)
    assert apiauth.verify((new, old), "POST", "/failback", b"", header, now=100.0)
    assert apiauth.verify([new, old], "POST", "/failback", b"", header.upper(), now=100.0)
    assert not apiauth.verify((new,), "POST", "/failback", b"", header, now=100.0)
    assert not apiauth.verify((), "POST", "/failback", b"", header, now=100.0)


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", "100", "100:", ":" + "a" * 64, "100:" + "a" * 63, "100:" + "g" * 64,
     "-100:" + "a" * 64, "1e3:" + "a" * 64, "١٠٠:" + "a" * 64, "100:" + "a" * 64 + ":x",
     "9" * 40 + ":" + "a" * 64, "100:" + "é" * 64],
)  # fmt: skip
def test_malformed_headers_are_refused_without_raising(header: str | None) -> None:
    assert not apiauth.verify(SECRET, "POST", "/switchover", b"", header, now=100.0)
    assert apiauth.parse_header(header) is None


def test_seen_signatures_refuse_a_second_use_until_the_window_ends() -> None:
    seen = apiauth.SeenSignatures(window=30.0, max_entries=2)
    a = apiauth.sign(SECRET, "POST", "/switchover", b"a", 100.0)
    b = apiauth.sign(SECRET, "POST", "/switchover", b"b", 100.0)
    assert seen.first_use(a, 100.0)
    assert not seen.first_use(a, 129.0)
    assert seen.first_use(b, 129.0)
    assert seen.first_use(a, 131.0)  # expired from memory: verify() refuses it by then anyway
    c = apiauth.sign(SECRET, "POST", "/switchover", b"c", 131.0)
    assert seen.first_use(c, 131.0)  # full: the oldest (b) made room
    assert seen.first_use(b, 131.0)


# -- /health ---------------------------------------------------------------------------------


def test_health_is_200_only_while_active(server: ApiServer, handle: FakeHandle) -> None:
    standby = call(server, "GET", "/health")
    assert (standby.status, standby.body) == (503, b"standby: cfg2 is active\n")
    assert standby.headers["Content-Type"].startswith("text/plain")
    handle.reason = "local checks failing:\n pop3\tdown"
    assert call(server, "GET", "/health").body == b"local checks failing: pop3 down\n"
    handle.serve_until = time.monotonic() + 60
    active = call(server, "GET", "/health")
    assert (active.status, active.body) == (200, b"active\n")


def test_head_health_answers_the_status_without_a_body(
    server: ApiServer, handle: FakeHandle
) -> None:
    head = call(server, "HEAD", "/health")
    assert (head.status, head.body) == (503, b"")
    handle.serve_until = time.monotonic() + 60
    head = call(server, "HEAD", "/health")
    assert (head.status, head.body) == (200, b"")


def test_health_answers_and_expires_while_the_main_loop_is_frozen(
    server: ApiServer, handle: FakeHandle
) -> None:
    handle.serve_until = time.monotonic() + 0.5
    with handle.main_loop:  # the daemon's main loop is frozen from here on
        # The freeze is real: what needs the main loop does not answer...
        with pytest.raises(TimeoutError):
            call(server, "GET", "/status", timeout=0.3)
        switchover = threading.Thread(target=signed, args=(server, "/switchover"))
        switchover.start()
        assert handle.operate_entered.wait(5)
        # ...but /health does, from the published lease deadline, and turns 503 once it passed.
        assert call(server, "GET", "/health", timeout=2).status == 200
        wait_for(lambda: call(server, "GET", "/health", timeout=2).status == 503)
        assert call(server, "GET", "/health").body == b"lease expired: not renewed in time\n"
        assert handle.operations == []
    switchover.join(OPERATE_TIMEOUT)
    assert handle.operations == [(Operation.SWITCHOVER, OPERATE_TIMEOUT)]


def test_a_failing_health_call_answers_503(server: ApiServer, handle: FakeHandle) -> None:
    def broken() -> None:
        raise RuntimeError("bug")

    handle.health = broken  # type: ignore[method-assign,assignment]
    answer = call(server, "GET", "/health")
    assert (answer.status, answer.body) == (503, b"health unknown: internal error\n")


# -- read-only endpoints ---------------------------------------------------------------------


def test_status_serves_the_snapshot_as_json(server: ApiServer) -> None:
    answer = call(server, "GET", "/status")
    assert answer.status == 200
    assert answer.json() == status_doc()


def test_metrics_passes_accept_and_keeps_the_content_type(
    server: ApiServer, handle: FakeHandle
) -> None:
    answer = call(server, "GET", "/metrics", headers={"Accept": "application/openmetrics-text"})
    assert (answer.status, answer.body) == (200, b"failoverd_epoch 3\n")
    assert answer.headers["Content-Type"] == METRICS_TYPE
    call(server, "GET", "/metrics")
    assert handle.accepts == ["application/openmetrics-text", ""]


def test_history_passes_the_limit(server: ApiServer, handle: FakeHandle) -> None:
    assert call(server, "GET", "/history?limit=2").json() == HISTORY[-2:]
    assert call(server, "GET", "/history").json() == HISTORY
    assert handle.limits == [2, None]


@pytest.mark.parametrize("limit", ["x", "-1", "2.5", "", "100001", "1234567", "%D9%A3"])
def test_a_bad_history_limit_is_400(server: ApiServer, handle: FakeHandle, limit: str) -> None:
    answer = call(server, "GET", f"/history?limit={limit}")
    assert answer.status == 400
    assert answer.body == b"limit must be a whole number from 0 to 100000\n"
    assert handle.limits == []


def test_explain_serves_sentences(server: ApiServer) -> None:
    assert call(server, "GET", "/explain").json() == [
        "cfg1 is active: it holds the lease (cfg1, lb).",
        "Its checks pass.",
    ]


def test_a_failing_handle_call_is_a_500_with_one_line(
    server: ApiServer, handle: FakeHandle, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("bug")

    handle.snapshot = broken  # type: ignore[method-assign,assignment]
    answer = call(server, "GET", "/status")
    assert answer.status == 500
    assert answer.json() == {"ok": False, "message": "internal error in the daemon: see its log"}
    assert "GET /status failed" in caplog.text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/nope", 404), ("GET", "/health/x", 404), ("POST", "/maintenance", 404),
     ("POST", "/health", 405), ("GET", "/switchover", 405), ("DELETE", "/status", 405),
     ("PUT", "/maintenance/on", 405)],
)  # fmt: skip
def test_bad_paths_are_404_and_bad_methods_405(
    server: ApiServer, handle: FakeHandle, method: str, path: str, status: int
) -> None:
    assert call(server, method, path).status == status
    assert handle.operations == []


# -- control ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "op"),
    [("/maintenance/on", Operation.MAINTENANCE_ON), ("/maintenance/off", Operation.MAINTENANCE_OFF),
     ("/switchover", Operation.SWITCHOVER), ("/failback", Operation.FAILBACK)],
)  # fmt: skip
def test_a_signed_control_request_runs_its_operation(
    server: ApiServer, handle: FakeHandle, path: str, op: Operation
) -> None:
    answer = signed(server, path)
    assert answer.status == 200
    assert answer.json() == {"ok": True, "message": "done"}
    assert handle.operations == [(op, OPERATE_TIMEOUT)]


def test_a_refused_operation_is_409(server: ApiServer, handle: FakeHandle) -> None:
    handle.result = OperationResult(False, "cfg2 is not healthy: not switching over")
    answer = signed(server, "/switchover")
    assert answer.status == 409
    assert answer.json() == {"ok": False, "message": "cfg2 is not healthy: not switching over"}


def test_a_key_being_rotated_in_is_accepted() -> None:
    new = b"n" * 40
    handle = FakeHandle(keys=(SECRET, new))
    api = ApiServer(handle, "127.0.0.1", 0, logging.getLogger("test.api"))
    api.start()
    try:
        assert signed(api, "/failback", secret=new).status == 200
    finally:
        api.stop()


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing X-Failoverd-Auth header"),
        ({apiauth.HEADER: "secret"}, "malformed X-Failoverd-Auth header"),
        ({apiauth.HEADER: "12:" + "0" * 64}, "invalid X-Failoverd-Auth header"),
    ],
)
def test_an_unsigned_control_request_is_401_with_the_reason(
    server: ApiServer,
    handle: FakeHandle,
    caplog: pytest.LogCaptureFixture,
    headers: dict[str, str],
    message: str,
) -> None:
    answer = call(server, "POST", "/switchover", b"{}", headers)
    assert answer.status == 401
    reply = answer.json()
    assert isinstance(reply, dict)
    assert reply["ok"] is False
    assert reply["message"].startswith(message)
    assert "\n" not in reply["message"]
    assert handle.operations == []
    assert f"refused POST /switchover from 127.0.0.1: {message}" in caplog.text


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"secret": b"wrong-secret-" + b"w" * 32},
        {"at": time.time() - 3600},  # expired
        {"at": time.time() + 3600},  # from the future
        {"sign_path": "/maintenance/on"},  # signed for another operation
    ],
)
def test_a_wrongly_signed_control_request_is_401(
    server: ApiServer, handle: FakeHandle, request_kwargs: dict[str, object]
) -> None:
    answer = signed(server, "/switchover", **request_kwargs)  # type: ignore[arg-type]
    assert answer.status == 401
    assert handle.operations == []


def test_a_changed_body_invalidates_the_signature(server: ApiServer, handle: FakeHandle) -> None:
    header = apiauth.sign(SECRET, "POST", "/switchover", b'{"nonce":"1"}', time.time())
    answer = call(server, "POST", "/switchover", b'{"nonce":"2"}', {apiauth.HEADER: header})
    assert answer.status == 401
    assert handle.operations == []


def test_a_replayed_control_request_is_refused(server: ApiServer, handle: FakeHandle) -> None:
    body = b'{"nonce":"once"}'
    headers = {apiauth.HEADER: apiauth.sign(SECRET, "POST", "/switchover", body, time.time())}
    assert call(server, "POST", "/switchover", body, headers).status == 200
    replay = call(server, "POST", "/switchover", body, headers)
    assert replay.status == 401
    assert "already used" in str(replay.json())
    assert handle.operations == [(Operation.SWITCHOVER, OPERATE_TIMEOUT)]


def test_one_operation_at_a_time(server: ApiServer, handle: FakeHandle) -> None:
    with handle.main_loop:
        first = threading.Thread(target=signed, args=(server, "/switchover"))
        first.start()
        assert handle.operate_entered.wait(5)
        second = signed(server, "/maintenance/on", b'{"nonce":"2"}')
        assert second.status == 409
        assert second.json() == {
            "ok": False,
            "message": "switchover is still in progress: try again once it has finished",
        }
    first.join(OPERATE_TIMEOUT)
    assert handle.operations == [(Operation.SWITCHOVER, OPERATE_TIMEOUT)]


def test_an_operation_the_main_loop_does_not_take_in_time_is_409(handle: FakeHandle) -> None:
    api = ApiServer(handle, "127.0.0.1", 0, logging.getLogger("test.api"), operate_timeout=0.2)
    api.start()
    try:
        with handle.main_loop:
            answer = signed(api, "/failback")
        assert answer.status == 409
        assert answer.json() == {"ok": False, "message": "the daemon did not answer in time"}
    finally:
        api.stop()


def test_an_oversize_body_is_413_before_anything_else(
    server: ApiServer, handle: FakeHandle
) -> None:
    body = b"x" * (MAX_BODY + 1)
    assert signed(server, "/switchover", body).status == 413
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:  # chunked: no Content-Length to refuse it by
        conn.request("POST", "/switchover", body=iter([body[:3000], body[3000:]]))
        assert conn.getresponse().status == 413
    finally:
        conn.close()
    assert handle.operations == []
    assert signed(server, "/switchover", b"x" * MAX_BODY).status == 200


# -- the server ------------------------------------------------------------------------------


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        api = ApiServer(FakeHandle(), "127.0.0.1", port, logging.getLogger("test.api"))
        with pytest.raises(ApiServerError) as e:
            api.start()
    assert str(e.value) == (
        f"cannot serve the HTTP API on 127.0.0.1:{port}: Address already in use "
        "(is another failoverd running there? otherwise change node.api)"
    )
    api.stop()  # nothing to stop: no error either


def test_stop_frees_the_port() -> None:
    api = ApiServer(FakeHandle(), "127.0.0.1", 0, logging.getLogger("test.api"))
    api.start()
    port = api.port
    api.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    again = ApiServer(FakeHandle(), "127.0.0.1", port, logging.getLogger("test.api"))
    again.start()
    again.stop()


def _reset(port: int, request: bytes, read_status: bool) -> bytes:
    """Send `request` and close with a TCP RST, as HAProxy ends its checks."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        status = s.recv(64) if read_status else b""
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return status


def test_haproxy_style_resets_log_nothing(
    server: ApiServer,
    handle: FakeHandle,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    handle.serve_until = time.monotonic() + 60
    check = b"GET /health HTTP/1.0\r\n\r\n"  # what `option httpchk GET /health` sends
    for _ in range(20):
        assert _reset(server.port, check, read_status=True).startswith(b"HTTP/1.0 200")
        _reset(server.port, check, read_status=False)
        _reset(server.port, b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n", read_status=False)
    assert call(server, "GET", "/health").status == 200  # every request before it is done
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert noisy == []
    assert "Traceback" not in capfd.readouterr().err


def test_a_bad_request_is_one_log_line_without_traceback(
    server: ApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    assert _reset(server.port, b"GET /health HTTP/1.1\r\nBad Header\r\n\r\n", True).startswith(
        b"HTTP/1.0 400"
    )
    wait_for(lambda: any(r.name == "test.api.http" for r in caplog.records))
    [record] = [r for r in caplog.records if r.name == "test.api.http"]
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    assert "\n" not in record.getMessage()
    assert "Invalid header token" in record.getMessage()


def test_the_access_log_is_off_unless_asked_for(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for access_log in (False, True):
        api = ApiServer(
            FakeHandle(), "127.0.0.1", 0, logging.getLogger("test.api"), access_log=access_log
        )
        api.start()
        conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=5)
        try:
            # On one connection, the first request is logged before the second is handled.
            for _ in range(2):
                conn.request("GET", "/health")
                conn.getresponse().read()
        finally:
            conn.close()
            api.stop()
        logged = [r for r in caplog.records if r.name == "test.api.access"]
        assert bool(logged) is access_log
