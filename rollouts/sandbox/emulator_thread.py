"""The API emulator's thread runner (see `EmulatorThread`)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

from rollouts.sandbox.apiserver import ApiEmulator


class EmulatorThread:
    """Runs an ApiEmulator (and optionally a kubelet simulator) on its own loop in a daemon
    thread, for synchronous code and for tests whose loop must stay free."""

    def __init__(self, emulator: ApiEmulator, *, kubelet: Any = None) -> None:
        self.emulator = emulator
        self.kubelet = kubelet
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop_requested: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return self.emulator.url

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="api-emulator", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as e:  # reported to the starting thread
            self._error = e
            self._ready.set()
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop_requested = asyncio.Event()
        await self.emulator.start()
        try:
            if self.kubelet is not None:
                await self.kubelet.start()
            self._ready.set()
            await self._stop_requested.wait()
        finally:
            if self.kubelet is not None:
                await self.kubelet.stop()
            await self.emulator.stop()

    def run(self, coro_fn: Callable[[], Any]) -> Any:
        """Run ``coro_fn()`` on the emulator's loop and wait for its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro_fn(), self._loop).result()

    def stop(self) -> None:
        if self._loop is not None and self._stop_requested is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop_requested.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> EmulatorThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
