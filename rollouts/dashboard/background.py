"""The dashboard served from a thread (for `rollouts demo --keep --dashboard` and tests),
while the calling thread goes on with its own work."""

from __future__ import annotations

import asyncio
import threading

from rollouts.cli.kubeopts import Globals
from rollouts.dashboard.server import Settings, serve


class DashboardThread:
    """`rollouts dashboard` in a daemon thread with its own event loop."""

    def __init__(self, kubeconfig: str, settings: Settings) -> None:
        self.settings = settings
        self.kubeconfig = kubeconfig
        self.url = ""
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="dashboard", daemon=True)

    def _main(self) -> None:
        async def run() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()

            def started(url: str) -> None:
                self.url = url
                self._started.set()

            async with Globals(kubeconfig=self.kubeconfig).client() as client:
                await serve(self.settings, client, started=started, stop=self._stop)

        try:
            asyncio.run(run())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._started.set()

    def start(self, timeout: float = 60.0) -> DashboardThread:
        """Returns once the dashboard listens; raises what stopped it from starting."""
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError("the dashboard did not start")
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout=20)

    def __enter__(self) -> DashboardThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
