"""A local HTTP receiver for notification tests (aiohttp on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web

# A behaviour returns the status code to answer with for the n-th request (1-based), or
# None to hang until the client gives up.
Behaviour = Callable[[int], int | None]


def always(code: int) -> Behaviour:
    return lambda _: code


def failing_first(times: int, code: int = 503) -> Behaviour:
    return lambda n: code if n <= times else 200


def hanging_first(times: int) -> Behaviour:
    return lambda n: None if n <= times else 200


class Receiver:
    """Serves POST /<path>; records every request (path, headers, JSON body)."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or always(200)
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.answers: list[tuple[Any, int | None]] = []  # (body, code) in order
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def bodies(self) -> list[Any]:
        return [body for _, _, body in self.requests]

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.headers), await request.json()))
        body = self.requests[-1][2]
        code = self.behaviour(len(self.requests))
        self.answers.append((body, code))
        if code is None:
            await asyncio.sleep(3600)
        return web.Response(status=code or 200, text="ok")

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        # A hanging handler must not hold the test's teardown for aiohttp's default minute.
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class ThreadedReceiver(Receiver):
    """The same receiver on its own event loop in a thread (for tests that block)."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        super().__init__(behaviour)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> ThreadedReceiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def accepted(self) -> list[Any]:
        """Bodies answered with a 2xx, as a copy (safe to read from another thread)."""
        return json.loads(json.dumps([b for b, code in self.answers if code and code < 300]))


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
