"""A fault-injecting reverse proxy in front of the API emulator.

The controller is pointed at the proxy (`FaultProxy.write_kubeconfig`) instead of the
emulator. Each request is passed through or, with probability `rate`, answered with a fault a
real kube-apiserver (or a load balancer in front of one) produces:

* `500`: `InternalError`, the request was not applied;
* `409`: `Conflict` on a write, as if another writer got there first (not applied);
* `429`: `TooManyRequests` with `Retry-After: 1` (API priority and fairness), not applied;
* `timeout`: no answer for `hold` seconds, then `504 Timeout`. For a write, half of these
  are forwarded first: the write is applied and only the reply is lost, the case a client
  can only resolve by reading again.

Watch streams (`?watch=true`) are proxied chunk by chunk; with probability `cut_rate` a
stream is cut (the connection dropped, no clean end) after a random 0.2-3 s. The faults are
drawn from one `random.Random(seed)`, so a campaign is repeatable as far as the order of
requests is (the controller's concurrency makes that order vary a little between runs).

Status bodies follow the kube-apiserver's `Status` shape; product code must not depend on
their messages.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import pathlib
import random
from collections.abc import Callable
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from rollouts.sandbox.loopthread import LoopThread, serve_app

__all__ = ["FAULT_KINDS", "FaultProxy"]

FAULT_KINDS = ("500", "409", "429", "timeout")
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length",
                "content-encoding", "host", "upgrade"}
_STATUS = {
    "500": (500, "InternalError", "an error on the server (injected) has prevented the request "
                                  "from succeeding"),
    "409": (409, "Conflict", "the object has been modified; please apply your changes to the "
                             "latest version and try again (injected)"),
    "429": (429, "TooManyRequests", "the server has received too many requests and has asked "
                                    "us to try again later (injected)"),
    "timeout": (504, "Timeout", "the server was unable to return a response in the time "
                                "allotted (injected)"),
}


def _status_body(kind: str) -> dict[str, Any]:
    code, reason, message = _STATUS[kind]
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def _is_watch(request: web.Request) -> bool:
    return request.method == "GET" and request.query.get("watch", "").lower() in ("true", "1")


class FaultProxy:
    """`with FaultProxy(upstream) as proxy:` serves on `proxy.url` from its own thread."""

    def __init__(self, upstream: str, *, rate: float = 0.1, cut_rate: float = 0.1,
                 seed: int = 0, hold: float = 2.0, kinds: tuple[str, ...] = FAULT_KINDS) -> None:
        unknown = set(kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        self.upstream = upstream.rstrip("/")
        self.rate = rate
        self.cut_rate = cut_rate
        self.hold = hold
        self.kinds = kinds
        self.enabled = True
        self.random = random.Random(seed)
        self.requests = 0
        # Faults injected, by kind ("500", "409", "429", "timeout", "timeout-applied", "cut").
        self.injected: collections.Counter[str] = collections.Counter()
        self.port = 0
        self._session: aiohttp.ClientSession | None = None
        self._thread: LoopThread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def faults_total(self) -> int:
        return sum(self.injected.values())

    def write_kubeconfig(self, source: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
        """A copy of the kubeconfig `source` whose clusters point at this proxy."""
        config = yaml.safe_load(source.read_text())
        for cluster in config.get("clusters") or ():
            cluster["cluster"]["server"] = self.url
        target.write_text(yaml.safe_dump(config, sort_keys=False))
        return target

    # --- deciding ----------------------------------------------------------------------------
    def _draw_fault(self, request: web.Request) -> str | None:
        if not self.enabled or self.random.random() >= self.rate:
            return None
        kinds = [k for k in self.kinds if k != "409" or request.method != "GET"]
        return self.random.choice(kinds) if kinds else None

    # --- serving -----------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        fault = self._draw_fault(request)
        if fault is None:
            return await self._forward(request)
        if fault == "timeout":
            if request.method != "GET" and self.random.random() < 0.5:
                fault = "timeout-applied"
                with contextlib.suppress(aiohttp.ClientError):
                    await self._apply_only(request)
            await asyncio.sleep(self.hold)
        self.injected[fault] += 1
        kind = "timeout" if fault.startswith("timeout") else fault
        headers = {"Retry-After": "1"} if kind == "429" else {}
        return web.json_response(_status_body(kind), status=_STATUS[kind][0], headers=headers)

    async def _upstream(self, request: web.Request) -> aiohttp.ClientResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        body = await request.read()
        return await self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers,
            data=body or None, allow_redirects=False)

    async def _apply_only(self, request: web.Request) -> None:
        """The write reaches the server; its reply is dropped."""
        async with await self._upstream(request) as reply:
            await reply.read()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if _is_watch(request):
            return await self._stream(request)
        async with await self._upstream(request) as reply:
            payload = await reply.read()
            headers = {k: v for k, v in reply.headers.items() if k.lower() not in _HOP_HEADERS}
            return web.Response(body=payload, status=reply.status, headers=headers)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        cut_after = (self.random.uniform(0.2, 3.0)
                     if self.enabled and self.random.random() < self.cut_rate else None)
        async with await self._upstream(request) as reply:
            response = web.StreamResponse(status=reply.status, headers={
                k: v for k, v in reply.headers.items() if k.lower() not in _HOP_HEADERS})
            await response.prepare(request)
            loop = asyncio.get_running_loop()
            deadline = None if cut_after is None else loop.time() + cut_after
            while True:
                timeout = None if deadline is None else max(0.0, deadline - loop.time())
                try:
                    chunk = await asyncio.wait_for(reply.content.readany(), timeout)
                except TimeoutError:
                    self.injected["cut"] += 1
                    if request.transport is not None:
                        request.transport.abort()  # no terminating chunk: a dropped stream
                    return response
                except aiohttp.ClientError:
                    break
                if not chunk:
                    break
                try:
                    await response.write(chunk)
                except (ConnectionError, RuntimeError):
                    return response
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write_eof()
        return response

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._thread = LoopThread("fault-proxy", self._main)
        self._thread.start()
        return self

    async def _main(self, stop: asyncio.Event, ready: Callable[[], None]) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5), auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)

        def serving(port: int) -> None:
            self.port = port
            ready()

        try:
            await serve_app(app, self.port, stop, serving)
        finally:
            await self._session.close()

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
