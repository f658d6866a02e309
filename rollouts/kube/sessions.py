"""The HTTP exchange under `KubeClient`, on aiohttp (the controller) or httpx (the CLI).

`KubeClient` builds paths and bodies, counts requests and maps error statuses; a session
only sends bytes and hands back (status, reason, body), or the lines of a streamed answer.

Why two: the controller sends thousands of small writes, and aiohttp (already in the process
through kopf) costs a third of what httpx 0.28 / httpcore 1.0 cost per request on this path
(docs/benchmarks.md, "The API client": httpcore scans every pooled connection for expiry at
each request start and close, writes headers and body in two socket writes, and retries a
failed `import sniffio` on every lock when sniffio is missing). The CLI sends a handful of
requests, starts faster with httpx, and its tests swap the network for `httpx.MockTransport`.

Transport failures surface as httpx's exception types (`httpx.ConnectError`,
`httpx.ReadTimeout`, `httpx.RemoteProtocolError`, ...) whichever library carried the
request, so callers handle one family.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any, NamedTuple, Protocol

import aiohttp
import httpx

from rollouts.kube.config import Connection

ACCEPT_JSON = {"Accept": "application/json"}


class Reply(NamedTuple):
    status: int
    reason: str
    body: bytes


class Stream(NamedTuple):
    """A streamed answer: its status line and, for a success, its lines."""

    status: int
    reason: str
    lines: AsyncIterator[bytes]
    read: Any  # () -> Awaitable[bytes]: the whole (error) body


class HttpSession(Protocol):
    async def send(self, method: str, path: str, *, params: Mapping[str, str],
                   content: bytes | None, headers: Mapping[str, str]) -> Reply: ...

    def stream(self, path: str, *, params: Mapping[str, str], headers: Mapping[str, str],
               read_timeout: float | None) -> contextlib.AbstractAsyncContextManager[Stream]:
        ...

    async def close(self) -> None: ...


# --- aiohttp ----------------------------------------------------------------------------------


def _transport_error(exc: BaseException) -> httpx.TransportError:
    """An aiohttp failure as the httpx exception a caller of KubeClient expects."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(text)
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ClientSSLError):
        return httpx.ConnectError(text)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(text)
    if isinstance(exc, aiohttp.ClientOSError | aiohttp.ClientConnectionError):
        return httpx.NetworkError(text)
    return httpx.TransportError(text)


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Newline-delimited records of any length (StreamReader.readline caps a line at
    128 KiB; a watch event carrying a large object is longer)."""
    pending = b""
    async for chunk in content.iter_any():
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line
    if pending:
        yield pending


# Connections beyond the requests in flight, for watch streams (each holds one while open).
STREAM_HEADROOM = 16


class AiohttpSession:
    """A small keep-alive pool (`connections`, as many as KubeClient sends requests at once,
    plus room for watch streams) to one API server; created on first use because aiohttp
    binds its session to the running loop."""

    def __init__(self, connection: Connection, *, timeout: float = 30.0,
                 connections: int = 4) -> None:
        self._connection = connection
        self._timeout = timeout
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            tls = self._connection.tls()
            auth = None
            if (self._connection.username and self._connection.password
                    and not self._connection.token):
                auth = aiohttp.BasicAuth(self._connection.username, self._connection.password)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._connections + STREAM_HEADROOM,
                    ssl=tls if isinstance(tls, ssl.SSLContext) else False,
                    keepalive_timeout=30.0),
                headers=ACCEPT_JSON,
                auth=auth,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                # An API server sets no cookies worth keeping.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    def _url(self, path: str) -> str:
        # Not aiohttp's base_url: a server URL may carry a path (an API proxy's prefix),
        # which an absolute request path would replace.
        return self._connection.host.rstrip("/") + path

    async def send(self, method: str, path: str, *, params: Mapping[str, str],
                   content: bytes | None, headers: Mapping[str, str]) -> Reply:
        session = self._open()
        try:
            async with session.request(method, self._url(path), params=params or None,
                                       data=content,
                                       headers=headers) as response:
                body = await response.read()
                return Reply(response.status, response.reason or "", body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _transport_error(exc) from exc

    @contextlib.asynccontextmanager
    async def stream(self, path: str, *, params: Mapping[str, str],
                     headers: Mapping[str, str],
                     read_timeout: float | None) -> AsyncIterator[Stream]:
        session = self._open()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._timeout,
                                        sock_read=read_timeout)
        try:
            async with session.get(self._url(path), params=params, headers=headers,
                                   timeout=timeout) as response:
                yield Stream(response.status, response.reason or "",
                             _translated(_lines(response.content)), response.read)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _transport_error(exc) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _translated(lines: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for line in lines:
            yield line
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _transport_error(exc) from exc


def bounded_requests(limit: int) -> aiohttp.ClientMiddlewareType:
    """An aiohttp client middleware that lets at most `limit` requests other than watches
    be in flight at once (each until its body is read), the rest waiting their turn.

    Why: kopf's own session has no connection limit, and a burst of its writes (the
    finalizer it adds to each of a thousand Rollouts when it first sees them) opened as many
    TLS connections at once, each with its read buffers (asyncio's SSL protocol alone keeps
    256 KiB a connection): the controller's peak RSS went from ~180 to ~500 MiB in two
    seconds and stayed there (docs/benchmarks.md, "Memory at 1,000 Rollouts"). Watches
    are let through: each holds its connection for as long as it streams, so gating them
    could starve the writes behind them.
    """
    gate = asyncio.Semaphore(limit)

    async def middleware(request: aiohttp.ClientRequest,
                         handler: aiohttp.ClientHandlerType) -> aiohttp.ClientResponse:
        if request.url.query.get("watch") in ("true", "1"):
            return await handler(request)
        async with gate:
            response = await handler(request)
            await response.read()  # kept by the response; frees the connection for reuse
            return response

    return middleware


# --- httpx ------------------------------------------------------------------------------------


class HttpxSession:
    """httpx: for the CLI, and for tests that pass an `httpx.MockTransport`."""

    def __init__(self, connection: Connection, *, timeout: float = 30.0, connections: int = 4,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        auth: httpx.Auth | None = None
        if connection.username and connection.password and not connection.token:
            auth = httpx.BasicAuth(connection.username, connection.password)
        self._http = httpx.AsyncClient(
            base_url=connection.host,
            verify=connection.tls(),
            auth=auth,
            timeout=timeout,
            transport=transport,
            headers=ACCEPT_JSON,
            # A small pool: httpcore checks every pooled connection at each request.
            limits=httpx.Limits(max_connections=connections + STREAM_HEADROOM,
                                max_keepalive_connections=connections),
        )

    async def send(self, method: str, path: str, *, params: Mapping[str, str],
                   content: bytes | None, headers: Mapping[str, str]) -> Reply:
        response = await self._http.request(method, path, params=dict(params), content=content,
                                            headers=dict(headers))
        return Reply(response.status_code, response.reason_phrase, response.content)

    @contextlib.asynccontextmanager
    async def stream(self, path: str, *, params: Mapping[str, str],
                     headers: Mapping[str, str],
                     read_timeout: float | None) -> AsyncIterator[Stream]:
        timeout = httpx.Timeout(
            connect=self._http.timeout.connect, read=read_timeout,
            write=self._http.timeout.write, pool=self._http.timeout.pool)
        async with self._http.stream("GET", path, params=dict(params), headers=dict(headers),
                                     timeout=timeout) as response:
            yield Stream(response.status_code, response.reason_phrase,
                         _encoded(response.aiter_lines()), response.aread)

    async def close(self) -> None:
        await self._http.aclose()


async def _encoded(lines: AsyncIterator[str]) -> AsyncIterator[bytes]:
    async for line in lines:
        yield line.encode()

