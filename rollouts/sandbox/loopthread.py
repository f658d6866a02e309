"""An asyncio loop on a thread of its own, for sandbox helpers called from synchronous code.

The fault proxy, the metric stub and the write recorder each serve or watch while the caller
(a test, a benchmark) blocks on other things; each runs its `main(stop, ready)` coroutine
here. `main` calls `ready()` once it serves and returns when `stop` is set.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from aiohttp import web

__all__ = ["LoopThread", "serve_app"]

Main = Callable[[asyncio.Event, Callable[[], None]], Awaitable[None]]


class LoopThread:
    def __init__(self, name: str, main: Main) -> None:
        self._main = main
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        """Start, and return once `main` is ready (or raise what it failed with)."""
        self._thread.start()
        self._ready.wait(timeout)
        if self._error is not None:
            raise self._error

    def stop(self, timeout: float = 10.0) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await self._main(self._stop, self._ready.set)


async def serve_app(app: web.Application, port: int, stop: asyncio.Event,
                    ready: Callable[[int], None]) -> None:
    """Serve `app` on 127.0.0.1:`port` (0: any free one, passed to `ready`) until `stop`."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    ready(int(sockets[0].getsockname()[1]))
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
