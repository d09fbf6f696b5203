"""Health checks against real local servers: Dovecot, aiosmtpd, aiohttp, TCP, /bin/sh.

Everything listens on 127.0.0.1 on ports chosen at runtime. The Dovecot tests
use the `dovecot` fixture of tests/conftest.py (they skip without root/Dovecot).
"""

import asyncio
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.handlers import Sink
from aiosmtpd.smtp import SMTP
from pydantic import TypeAdapter

from failoverd.checks import Check, CheckOutcome, CheckRunner, build_check
from failoverd.checks.base import ProbeCheck
from failoverd.checks.http import HttpProbe
from failoverd.checks.runner import next_start
from failoverd.config.schema import CheckConfig, TcpCheck
from failoverd.lab.dovecot import DovecotInstance, pid_alive

LOCAL = "127.0.0.1"
_CONFIG: TypeAdapter[CheckConfig] = TypeAdapter(CheckConfig)


def make(kind: str, name: str | None = None, **fields: Any) -> Check:
    """A check built from config fields, as the daemon builds it (timeout 5s unless given)."""
    fields.setdefault("timeout", "5s")
    cfg = {"type": kind, "name": name or f"{kind}-check", "scope": "local", **fields}
    return build_check(_CONFIG.validate_python(cfg))


async def run_and_close(check: Check) -> CheckOutcome:
    try:
        return await check.run()
    finally:
        await check.close()


def gone_within(pid: int, timeout: float) -> bool:
    """SIGKILL is delivered asynchronously: wait (bounded) for the process to be gone."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def run_once(check: Check) -> CheckOutcome:
    return asyncio.run(run_and_close(check))


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)


@asynccontextmanager
async def line_server(
    greeting: str | None = None, answer: Callable[[str], str | None] = lambda line: None
) -> AsyncIterator[int]:
    """A TCP server: sends `greeting`, then `answer(line)` for each line (None: stays silent)."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            if greeting is not None:
                writer.write(greeting.encode() + b"\r\n")
            while line := await reader.readline():
                reply = answer(line.decode().rstrip("\r\n"))
                if reply is not None:
                    writer.write(reply.encode() + b"\r\n")
        except ConnectionError:
            pass

    server = await asyncio.start_server(handle, LOCAL, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for w in writers:
            w.close()
        await server.wait_closed()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port that is bound but not listening: connections are refused, nobody can take it."""
    with socket.socket() as s:
        s.bind((LOCAL, 0))
        yield s.getsockname()[1]


def password_file(tmp_path: Path, password: str) -> Path:
    path = tmp_path / "password"
    path.write_text(password + "\n")
    return path


# -- tcp ------------------------------------------------------------------------


def test_tcp_open_port_passes() -> None:
    async def scenario() -> CheckOutcome:
        async with line_server() as port:
            return await run_and_close(make("tcp", host=LOCAL, port=port))

    outcome = asyncio.run(scenario())
    assert outcome.ok
    assert outcome.detail.endswith(": connected")


def test_tcp_closed_port_fails_refused(closed_port: int) -> None:
    outcome = run_once(make("tcp", host=LOCAL, port=closed_port))
    assert not outcome.ok
    assert outcome.detail == f"tcp {LOCAL}:{closed_port}: connection refused"


def test_tcp_host_name_is_resolved() -> None:
    async def scenario() -> CheckOutcome:
        async with line_server() as port:
            return await run_and_close(make("tcp", host="localhost", port=port))

    outcome = asyncio.run(scenario())
    assert outcome.ok, outcome.detail


def test_tcp_ipv6_literal() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")

    async def scenario() -> CheckOutcome:
        try:
            server = await asyncio.start_server(lambda r, w: w.close(), "::1", 0)
        except OSError as e:
            pytest.skip(f"no IPv6 loopback here: {e}")
        async with server:
            port = server.sockets[0].getsockname()[1]
            return await run_and_close(make("tcp", host="::1", port=port))

    outcome = asyncio.run(scenario())
    assert outcome.ok, outcome.detail


# -- pop3 -----------------------------------------------------------------------


def test_pop3_greeting_from_dovecot(dovecot: DovecotInstance) -> None:
    outcome = run_once(make("pop3", host=LOCAL, port=dovecot.pop3_port))
    assert outcome.ok, outcome.detail
    assert outcome.detail == f"pop3 {LOCAL}:{dovecot.pop3_port}: greeting +OK"


def test_pop3_login_reads_the_password_file_at_each_run(
    dovecot: DovecotInstance, tmp_path: Path
) -> None:
    wrong = "not-the-secret-4711"
    pw = password_file(tmp_path, "secret")
    check = make("pop3", host=LOCAL, port=dovecot.pop3_port, user="alice", password_file=pw)

    async def scenario() -> tuple[CheckOutcome, CheckOutcome]:
        good = await check.run()
        pw.write_text(wrong + "\n")
        bad = await check.run()
        await check.close()
        return good, bad

    good, bad = asyncio.run(scenario())
    assert good.ok, good.detail
    assert good.detail.endswith(": logged in as alice")
    assert not bad.ok
    assert "login as alice refused: '-ERR [AUTH] Authentication failed.'" in bad.detail
    assert wrong not in bad.detail


def test_pop3_fails_refused_once_dovecot_stopped(dovecot: DovecotInstance) -> None:
    dovecot.stop()
    outcome = run_once(make("pop3", host=LOCAL, port=dovecot.pop3_port))
    assert not outcome.ok
    assert outcome.detail.endswith(": connection refused")


def test_pop3_bad_greeting_fails() -> None:
    async def scenario() -> CheckOutcome:
        async with line_server("-ERR [SYS/TEMP] not now") as port:
            return await run_and_close(make("pop3", host=LOCAL, port=port))

    outcome = asyncio.run(scenario())
    assert not outcome.ok
    assert outcome.detail.endswith(": greeting is not +OK: '-ERR [SYS/TEMP] not now'")


def test_pop3_masks_a_password_the_server_echoes(tmp_path: Path) -> None:
    """Even a server that repeats the PASS line cannot put the password into a detail."""
    secret = "hunter2-xyz"

    def answer(line: str) -> str:
        return "+OK" if line.startswith("USER") else f"-ERR bad {line}"

    async def scenario() -> CheckOutcome:
        async with line_server("+OK ready", answer) as port:
            pw = password_file(tmp_path, secret)
            check = make("pop3", host=LOCAL, port=port, user="alice", password_file=pw)
            return await run_and_close(check)

    outcome = asyncio.run(scenario())
    assert not outcome.ok
    assert secret not in outcome.detail
    assert "'-ERR bad PASS ***'" in outcome.detail


def test_pop3_missing_password_file_fails(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    check = make("pop3", host=LOCAL, port=1, user="alice", password_file=missing)
    outcome = run_once(check)
    assert not outcome.ok
    assert outcome.detail.endswith(
        f": cannot read password file {missing}: No such file or directory"
    )


@pytest.mark.parametrize("kind", ["pop3", "imap", "smtp"])
def test_a_server_that_never_speaks_times_out(kind: str) -> None:
    async def scenario() -> CheckOutcome:
        async with line_server() as port:
            return await run_and_close(make(kind, host=LOCAL, port=port, timeout="300ms"))

    outcome = asyncio.run(scenario())
    assert not outcome.ok
    assert outcome.detail.endswith(": no answer within 0.3s")
    assert 0.25 <= outcome.latency < 5


# -- imap -----------------------------------------------------------------------


def test_imap_greeting_from_dovecot(dovecot: DovecotInstance) -> None:
    assert dovecot.imap_port is not None
    outcome = run_once(make("imap", host=LOCAL, port=dovecot.imap_port))
    assert outcome.ok, outcome.detail
    assert outcome.detail == f"imap {LOCAL}:{dovecot.imap_port}: greeting * OK"


def test_imap_login_quotes_or_sends_literals(dovecot: DovecotInstance, tmp_path: Path) -> None:
    """alice: plain; bob: quotes and a backslash (quoted string); carol: non-ASCII (literal)."""
    port = dovecot.imap_port

    async def scenario() -> dict[str, CheckOutcome]:
        outcomes = {}
        for user, password in dovecot.users.items():
            pw = tmp_path / user
            pw.write_text(password + "\n")
            check = make("imap", host=LOCAL, port=port, user=user, password_file=pw)
            outcomes[user] = await run_and_close(check)
        return outcomes

    outcomes = asyncio.run(scenario())
    assert set(outcomes) == {"alice", "bob", "carol"}
    for user, outcome in outcomes.items():
        assert outcome.ok, outcome.detail
        assert outcome.detail.endswith(f": logged in as {user}")


def test_imap_wrong_password_fails(dovecot: DovecotInstance, tmp_path: Path) -> None:
    wrong = 'wrong "pass" 123'
    pw = password_file(tmp_path, wrong)
    outcome = run_once(
        make("imap", host=LOCAL, port=dovecot.imap_port, user="alice", password_file=pw)
    )
    assert not outcome.ok
    assert "login as alice refused: 'NO [AUTHENTICATIONFAILED]" in outcome.detail
    assert wrong not in outcome.detail


def test_imap_bad_greeting_fails() -> None:
    async def scenario() -> CheckOutcome:
        async with line_server("* BYE too many connections") as port:
            return await run_and_close(make("imap", host=LOCAL, port=port))

    outcome = asyncio.run(scenario())
    assert not outcome.ok
    assert outcome.detail.endswith(": greeting is not * OK: '* BYE too many connections'")


# -- smtp -----------------------------------------------------------------------


def test_smtp_against_aiosmtpd_passes() -> None:
    async def scenario() -> CheckOutcome:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(Sink(), hostname="mx.test"), LOCAL, 0)
        try:
            port = server.sockets[0].getsockname()[1]
            return await run_and_close(make("smtp", host=LOCAL, port=port, ehlo="node-a.test"))
        finally:
            server.close()
            await server.wait_closed()

    outcome = asyncio.run(scenario())
    assert outcome.ok, outcome.detail
    assert outcome.detail.endswith(": greeting 220, EHLO 250")


@pytest.mark.parametrize(
    ("greeting", "answer", "expected"),
    [
        (
            "554 5.3.2 not accepting mail",
            None,
            "greeting is not 220: '554 5.3.2 not accepting mail'",
        ),
        (
            "220 mx.test",
            "502 5.5.1 no EHLO here",
            "reply to EHLO is not 250: '502 5.5.1 no EHLO here'",
        ),
    ],
)
def test_smtp_bad_replies_fail(greeting: str, answer: str | None, expected: str) -> None:
    async def scenario() -> CheckOutcome:
        async with line_server(greeting, lambda line: answer) as port:
            return await run_and_close(make("smtp", host=LOCAL, port=port))

    outcome = asyncio.run(scenario())
    assert not outcome.ok
    assert outcome.detail.endswith(expected)


# -- http -----------------------------------------------------------------------


@asynccontextmanager
async def http_server(ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """aiohttp: GET /status/N answers N; GET /hang never answers (until the server stops)."""
    release = asyncio.Event()

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]))

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response()

    app = web.Application()
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/hang", hang)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, LOCAL, 0, ssl_context=ssl_context).start()
    try:
        yield runner.addresses[0][1]
    finally:
        release.set()
        await runner.cleanup()


def http_run(path: str, **fields: Any) -> CheckOutcome:
    async def scenario() -> CheckOutcome:
        async with http_server() as port:
            return await run_and_close(make("http", url=f"http://{LOCAL}:{port}{path}", **fields))

    return asyncio.run(scenario())


@pytest.mark.parametrize(
    ("code", "expect", "ok", "ending"),
    [
        (200, 200, True, ": status 200"),
        (503, 200, False, ": status 503, expected 200"),
        (503, 503, True, ": status 503"),
    ],
)
def test_http_expected_status(code: int, expect: int, ok: bool, ending: str) -> None:
    outcome = http_run(f"/status/{code}", expect_status=expect)
    assert outcome.ok is ok
    assert outcome.detail.endswith(ending)


def test_http_server_that_never_answers_times_out() -> None:
    outcome = http_run("/hang", timeout="500ms")
    assert not outcome.ok
    assert outcome.detail.endswith(": no answer within 0.5s")
    assert 0.45 <= outcome.latency < 5


def test_http_refused(closed_port: int) -> None:
    outcome = run_once(make("http", url=f"http://{LOCAL}:{closed_port}/"))
    assert not outcome.ok
    assert outcome.detail == f"http http://{LOCAL}:{closed_port}/: connection refused"


def test_http_detail_hides_a_password_in_the_url() -> None:
    async def scenario() -> tuple[CheckOutcome, int]:
        async with http_server() as port:
            url = f"http://monitor:topsecret@{LOCAL}:{port}/status/503"
            return await run_and_close(make("http", url=url)), port

    outcome, port = asyncio.run(scenario())
    assert "topsecret" not in outcome.detail
    assert outcome.detail == f"http http://{LOCAL}:{port}/status/503: status 503, expected 200"


@pytest.fixture
def self_signed(tmp_path: Path) -> ssl.SSLContext:
    """A server TLS context with a self-signed certificate for 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", f"/CN={LOCAL}", "-addext", f"subjectAltName=IP:{LOCAL}"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def test_https_verify_tls(self_signed: ssl.SSLContext) -> None:
    async def scenario() -> tuple[CheckOutcome, CheckOutcome]:
        async with http_server(self_signed) as port:
            url = f"https://{LOCAL}:{port}/status/200"
            verified = await run_and_close(make("http", url=url))
            unverified = await run_and_close(make("http", url=url, verify_tls=False))
            return verified, unverified

    verified, unverified = asyncio.run(scenario())
    assert not verified.ok
    assert "TLS certificate not accepted: self-signed certificate" in verified.detail
    assert unverified.ok, unverified.detail


def test_http_session_is_reused_and_closed_by_the_runner() -> None:
    async def scenario() -> None:
        async with http_server() as port:
            check = make("http", url=f"http://{LOCAL}:{port}/status/200", interval="10ms")
            assert isinstance(check, HttpProbe)
            results: list[CheckOutcome] = []
            runner = CheckRunner([check], lambda name, outcome: results.append(outcome))
            runner.start()
            await until(lambda: len(results) >= 1)
            session = check._session
            await until(lambda: len(results) >= 3)
            assert check._session is session is not None
            await runner.stop()
            assert session.closed
            assert all(r.ok for r in results)

    asyncio.run(scenario())


# -- exec -----------------------------------------------------------------------


def test_exec_exit_zero_passes_with_first_line() -> None:
    outcome = run_once(make("exec", command="echo '  all good  '; echo second line"))
    assert outcome.ok
    assert outcome.detail.endswith(": exit 0: all good")


def test_exec_nonzero_exit_fails_with_stderr() -> None:
    outcome = run_once(make("exec", command="echo 'pop3 down' >&2; exit 3"))
    assert not outcome.ok
    assert outcome.detail.endswith(": exit 3: pop3 down")


@pytest.fixture
def spawned_child(tmp_path: Path) -> Iterator[Callable[[], int]]:
    """Reads the PID a command wrote to `tmp_path/child.pid`; SIGKILLs it after the test."""
    pidfile = tmp_path / "child.pid"
    seen: list[int] = []

    def read() -> int:
        seen.append(int(pidfile.read_text()))
        return seen[-1]

    yield read
    for pid in seen:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_exec_timeout_kills_the_whole_process_group(
    tmp_path: Path, spawned_child: Callable[[], int]
) -> None:
    command = f"sleep 60 & echo $! > {tmp_path}/child.pid; wait"
    outcome = run_once(make("exec", command=command, timeout="500ms"))
    assert not outcome.ok
    assert outcome.detail.endswith(": no answer within 0.5s")
    assert gone_within(spawned_child(), 5.0)


def test_exec_leftovers_of_a_passing_command_are_killed(
    tmp_path: Path, spawned_child: Callable[[], int]
) -> None:
    """A background child still holding the output pipe neither delays the check nor survives."""
    command = f"sleep 60 & echo $! > {tmp_path}/child.pid; echo started"
    outcome = run_once(make("exec", command=command, timeout="30s"))
    assert outcome.ok
    assert outcome.detail.endswith(": exit 0: started")
    assert outcome.latency < 20
    assert gone_within(spawned_child(), 5.0)


# -- never raises -----------------------------------------------------------------


class BrokenProbe(ProbeCheck[TcpCheck]):
    @property
    def label(self) -> str:
        return "broken"

    async def probe(self) -> str:
        raise KeyError("boom")


def test_an_unexpected_error_becomes_a_failed_outcome() -> None:
    spec = TcpCheck.model_validate(
        {"type": "tcp", "name": "b", "scope": "local", "host": LOCAL, "port": 1}
    )
    outcome = run_once(BrokenProbe(spec))
    assert not outcome.ok
    assert outcome.detail == "broken: 'boom'"


# -- runner ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [(0.5, 1.0), (1.0, 1.0), (1.5, 2.0), (3.2, 4.0), (0.0, 1.0)],
)
def test_next_start_skips_missed_slots(now: float, expected: float) -> None:
    assert next_start(0.0, 1.0, now) == pytest.approx(expected)


def test_runner_a_slow_check_does_not_delay_a_fast_one() -> None:
    async def scenario() -> None:
        results: list[tuple[str, CheckOutcome]] = []

        def count(name: str) -> int:
            return sum(1 for n, _ in results if n == name)

        async with line_server() as silent, line_server() as listening:
            fast = make("tcp", name="fast", host=LOCAL, port=listening, interval="20ms")
            slow = make("pop3", name="slow", host=LOCAL, port=silent, timeout="60s")
            runner = CheckRunner([fast, slow], lambda name, o: results.append((name, o)))
            runner.start()
            try:
                await until(lambda: count("fast") >= 5)
                assert count("slow") == 0
            finally:
                await runner.stop()
        assert all(o.ok for n, o in results if n == "fast")
        leftover = [t for t in asyncio.all_tasks() if t.get_name().startswith("check ")]
        assert leftover == []

    asyncio.run(scenario())


def test_runner_keeps_running_when_the_callback_raises() -> None:
    async def scenario() -> None:
        calls: list[str] = []

        def on_result(name: str, outcome: CheckOutcome) -> None:
            calls.append(name)
            if len(calls) == 1:
                raise RuntimeError("callback bug")

        check = make("exec", command="true", interval="10ms")
        runner = CheckRunner([check], on_result)
        runner.start()
        try:
            await until(lambda: len(calls) >= 3)
        finally:
            await runner.stop()

    asyncio.run(scenario())
