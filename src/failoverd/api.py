"""The HTTP API: /health for load balancers, /status, /metrics, /history, /explain, control.

`ApiServer` runs the aiohttp application in a thread of its own, with its own
event loop, so that `/health` keeps answering, and turns 503 once the lease
deadline passes, even while the daemon's main loop is frozen. On the API's
own loop run only `DaemonHandle.health()`, which reads published values, and
`verify()`, an HMAC; every other call into the handle runs in an executor
thread, so that neither a slow read (the journal, a snapshot) nor an
operation waiting for the main loop can hold up the API's loop.

Read-only endpoints are open; the control endpoints need a valid
X-Failoverd-Auth header (see `failoverd.apiauth`).
"""

import asyncio
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler

from failoverd.apiauth import (
    CONTROL_PATHS,
    DEFAULT_WINDOW,
    HEADER,
    SeenSignatures,
    parse_header,
)
from failoverd.core.events import Operation
from failoverd.runtime.handle import DaemonHandle, OperationResult

T = TypeVar("T")

MAX_BODY = 4096
"""Bytes a request body may have: control bodies hold a nonce, nothing larger."""
MAX_HISTORY = 100_000
DEFAULT_OPERATE_TIMEOUT = 10.0
"""Seconds an operation may wait for the main loop to take it and answer."""
_LIMIT = re.compile(r"[0-9]{1,6}")


class ApiServerError(Exception):
    """The API cannot serve (its address is taken or not local, or it did not start)."""


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _OneLine(logging.Filter):
    """aiohttp's server log as one warning line per bad request, without the traceback.

    Port scanners and broken clients send what is not HTTP; each would
    otherwise put an ERROR and a traceback into the daemon's log. (Errors in
    the handlers themselves are logged by the API's middleware, with theirs.)
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.msg = _one_line(f"{record.getMessage()}: {type(exc).__name__}: {exc}")
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.levelno = min(record.levelno, logging.WARNING)
            record.levelname = logging.getLevelName(record.levelno)
        return True


_ONE_LINE = _OneLine()


def _answer(ok: bool, message: str, status: int) -> web.Response:
    return web.json_response({"ok": ok, "message": message}, status=status)


class _Api:
    """The request handlers around one DaemonHandle; lives on the API thread's loop."""

    def __init__(
        self,
        handle: DaemonHandle,
        log: logging.Logger,
        *,
        reads: ThreadPoolExecutor,
        ops: ThreadPoolExecutor,
        operate_timeout: float,
        auth_window: float,
    ) -> None:
        self.handle = handle
        self.log = log
        self.reads = reads
        self.ops = ops
        self.operate_timeout = operate_timeout
        self.seen = SeenSignatures(auth_window)
        self.operating: Operation | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._errors])
        app.router.add_get("/health", self.health)
        app.router.add_get("/status", self.status)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/history", self.history)
        app.router.add_get("/explain", self.explain)
        for path in CONTROL_PATHS:
            app.router.add_post(path, self.control)
        return app

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.reads, fn, *args)

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception:
            self.log.exception("%s %s failed", request.method, request.path)
            return _answer(False, "internal error in the daemon: see its log", 500)

    async def health(self, request: web.Request) -> web.Response:
        try:
            health = self.handle.health()
        except Exception:
            self.log.exception("health() failed")
            return web.Response(status=503, text="health unknown: internal error\n")
        if health.ok:
            return web.Response(text="active\n")
        return web.Response(status=503, text=_one_line(health.reason) + "\n")

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(dict(await self._read(self.handle.snapshot)))

    async def metrics(self, request: web.Request) -> web.Response:
        body, content_type = await self._read(
            self.handle.metrics, request.headers.get("Accept", "")
        )
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def history(self, request: web.Request) -> web.Response:
        raw = request.query.get("limit")
        if raw is not None and (not _LIMIT.fullmatch(raw) or int(raw) > MAX_HISTORY):
            return web.Response(
                status=400, text=f"limit must be a whole number from 0 to {MAX_HISTORY}\n"
            )
        limit = None if raw is None else int(raw)
        return web.json_response(await self._read(self.handle.history, limit))

    async def explain(self, request: web.Request) -> web.Response:
        return web.json_response(await self._read(self.handle.explain))

    async def control(self, request: web.Request) -> web.Response:
        op = CONTROL_PATHS[request.path]
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _answer(False, f"request body larger than {MAX_BODY} bytes", 413)
        body = await request.read()  # a chunked body over client_max_size answers 413
        refused = self._refusal(request, body)
        if refused is not None:
            self.log.warning(
                "refused %s %s from %s: %s",
                request.method,
                request.path,
                request.remote,
                refused,
            )
            return _answer(False, refused, 401)
        if self.operating is not None:
            return _answer(
                False,
                f"{self.operating} is still in progress: try again once it has finished",
                409,
            )
        self.log.info("%s requested from %s", op, request.remote)
        self.operating = op
        try:
            result: OperationResult = await asyncio.get_running_loop().run_in_executor(
                self.ops, self.handle.operate, op, self.operate_timeout
            )
        finally:
            self.operating = None
        self.log.info("%s: %s", op, result.message)
        return _answer(result.ok, result.message, 200 if result.ok else 409)

    def _refusal(self, request: web.Request, body: bytes) -> str | None:
        """Why a control request is refused, or None if it is authentic and new."""
        header = request.headers.get(HEADER)
        if header is None:
            return f"missing {HEADER} header: use the failoverd CLI, which signs with the secret"
        if parse_header(header) is None:
            return f"malformed {HEADER} header: expected <unix time>:<64 hex digits>"
        if not self.handle.verify(request.method, request.path, body, header):
            return (
                f"invalid {HEADER} header: signed with another secret, or the clocks of the "
                "client and this node differ too much"
            )
        if not self.seen.first_use(header, time.time()):
            return "this signed request was already used (a replay): sign a new one"
        return None


class ApiServer:
    """The HTTP API served from its own thread and event loop; starts once.

    `port` 0 picks a free port; `port` then tells which one. `auth_window`
    must be the window `handle.verify` accepts signatures in, so that
    accepted signatures are remembered (and replays refused) for as long.
    """

    def __init__(
        self,
        handle: DaemonHandle,
        host: str,
        port: int,
        log: logging.Logger,
        *,
        access_log: bool = False,
        operate_timeout: float = DEFAULT_OPERATE_TIMEOUT,
        auth_window: float = DEFAULT_WINDOW,
    ) -> None:
        self.handle = handle
        self.host = host
        self.port = port
        self.log = log
        self.access_log = access_log
        self.operate_timeout = operate_timeout
        self.auth_window = auth_window
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: Exception | None = None

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def thread_id(self) -> int | None:
        """The API thread's native id (to raise its priority), None when it is not running."""
        return None if self._thread is None else self._thread.native_id

    def start(self, timeout: float = 10.0) -> None:
        """Return once the API listens; raise ApiServerError if it cannot."""
        if self._thread is not None:
            raise ApiServerError("the HTTP API is already started")
        self._thread = threading.Thread(target=self._run, name="failoverd-api", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise ApiServerError(f"the HTTP API on {self.address} did not start within {timeout}s")
        if self._error is not None:
            self._thread.join()
            self._thread = None
            e = self._error
            # asyncio's bind errors repeat the address in strerror: keep the system's words
            why = os.strerror(e.errno) if isinstance(e, OSError) and e.errno else str(e) or repr(e)
            raise ApiServerError(
                f"cannot serve the HTTP API on {self.address}: {why} "
                "(is another failoverd running there? otherwise change node.api)"
            )
        self.log.info("HTTP API listening on http://%s", self.address)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread; operations still waiting are abandoned."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None and thread.is_alive():
            loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        try:
            with asyncio.Runner() as runner:
                runner.run(self._serve())
        except Exception as e:
            if self._ready.is_set():
                self.log.exception("the HTTP API stopped serving")
            else:  # start() raises it as ApiServerError
                self._error = e
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server_log = self.log.getChild("http")
        server_log.addFilter(_ONE_LINE)  # once: addFilter ignores a filter already there
        reads = ThreadPoolExecutor(2, thread_name_prefix="failoverd-api-read")
        ops = ThreadPoolExecutor(1, thread_name_prefix="failoverd-api-op")
        api = _Api(
            self.handle,
            self.log,
            reads=reads,
            ops=ops,
            operate_timeout=self.operate_timeout,
            auth_window=self.auth_window,
        )
        runner = web.AppRunner(
            api.app(),
            handle_signals=False,
            access_log=self.log.getChild("access") if self.access_log else None,
            logger=server_log,
            shutdown_timeout=1.0,
        )
        try:
            await runner.setup()
            await web.TCPSite(runner, self.host, self.port).start()
            self.port = runner.addresses[0][1]
            self._ready.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()
            reads.shutdown(wait=False, cancel_futures=True)
            ops.shutdown(wait=False, cancel_futures=True)
