"""http/https: a GET answers the expected status.

Redirects are not followed: the URL's own status counts. The session (DNS
cache, TLS context) is reused across runs, but every run opens a new
connection, as a load balancer's check does: a server that no longer accepts
connections must not pass on a kept-alive one.
"""

import aiohttp
from yarl import URL

from failoverd.checks.base import CheckFailed, ProbeCheck
from failoverd.config.schema import HttpCheck


class HttpProbe(ProbeCheck[HttpCheck]):
    def __init__(self, spec: HttpCheck) -> None:
        super().__init__(spec)
        self._session: aiohttp.ClientSession | None = None
        url = URL(spec.url)
        if url.password:
            self._secrets.add(url.password)
        self._shown_url = str(url.with_user(None))

    @property
    def label(self) -> str:
        return f"http {self._shown_url}"

    async def probe(self) -> str:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True),
                timeout=aiohttp.ClientTimeout(total=None),  # run() enforces the check's timeout
            )
        expected = self.spec.expect_status
        try:
            async with self._session.get(
                self.spec.url, ssl=self.spec.verify_tls, allow_redirects=False
            ) as response:
                status = response.status
        except aiohttp.ClientConnectorError as e:
            raise e.os_error from e  # "connection refused", TLS errors: see describe_error
        if status != expected:
            raise CheckFailed(f"status {status}, expected {expected}")
        return f"status {status}"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
